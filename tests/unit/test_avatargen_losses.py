"""AvatarGen's losses, renderer and body proxy on hand-computed toys."""

import math

import pytest
import torch

from methods.avatargen import body, losses
from methods.avatargen.nets import Discriminator
from methods.avatargen.render import composite, depths, project, ray_points, rotate_y, sdf_density

pytestmark = pytest.mark.unit


def test_ns_gan_losses_at_zero_logits_are_log_two():
    zero = torch.zeros(4)
    assert losses.discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert losses.generator_loss(zero).item() == pytest.approx(math.log(2))
    # A confident, correct D: real ≫ 0, fake ≪ 0 → L_D ≈ 0 while L_G is large.
    assert losses.discriminator_loss(torch.full((2,), 20.0), torch.full((2,), -20.0)).item() < 1e-6
    assert losses.generator_loss(torch.full((2,), -20.0)).item() == pytest.approx(20.0, abs=1e-6)


def test_r1_of_a_linear_discriminator_is_half_gamma_times_weight_norm_squared():
    a = torch.tensor([1.0, -2.0, 3.0])
    x = torch.randn(5, 3, requires_grad=True)
    logits = x @ a  # ∇_x D = a for every sample
    assert losses.r1_penalty(logits, x, gamma=2.0).item() == pytest.approx(14.0)


def test_eikonal_is_zero_for_a_true_sdf_and_one_for_a_doubled_one():
    x = torch.randn(50, 3, requires_grad=True)
    assert losses.eikonal_loss(x.norm(dim=-1) - 0.5, x).item() == pytest.approx(0.0, abs=1e-10)
    assert losses.eikonal_loss(2 * x.norm(dim=-1), x).item() == pytest.approx(1.0, abs=1e-5)


def test_minimal_surface_proxy_prior_and_deformation_penalties():
    assert losses.minimal_surface_loss(torch.tensor([0.0, 1.0])).item() == pytest.approx(0.5)
    # δd counts only where the proxy is farther than the margin: (0 + 2²) / 2.
    prior = losses.proxy_prior_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), margin=0.05)
    assert prior.item() == pytest.approx(2.0)
    assert losses.deformation_loss(torch.tensor([[3.0, 4.0, 0.0]])).item() == pytest.approx(25.0)


def test_sdf_density_is_half_over_alpha_on_the_surface_and_vanishes_outside():
    alpha = torch.tensor(0.05)
    sigma = sdf_density(torch.tensor([0.0, 1.0, -1.0]), alpha)
    assert sigma[0].item() == pytest.approx(10.0)
    assert sigma[1].item() < 1e-6 and sigma[2].item() == pytest.approx(20.0)


def test_composite_of_one_opaque_sample_returns_its_colour_and_depth():
    samples, size = 5, 1
    sigma = torch.zeros(1, samples)
    sigma[0, 2] = 1e4  # the third sample is opaque
    rgb = torch.zeros(1, samples, 3)
    rgb[0, 2] = torch.tensor([1.0, 0.0, 0.5])
    out = composite(sigma, rgb, size, samples)
    assert out["opacity"].item() == pytest.approx(1.0)
    assert out["depth"].item() == pytest.approx(depths(samples)[2].item())
    assert out["image"][0, :, 0, 0].tolist() == pytest.approx([1.0, -1.0, 0.0], abs=1e-5)  # [0,1] → [−1,1]
    assert out["surface"].item() == pytest.approx(depths(samples)[2].item())
    empty = composite(torch.zeros(1, samples), rgb, size, samples)
    assert empty["image"].min().item() == pytest.approx(1.0)  # white background
    assert empty["surface"].item() == pytest.approx(depths(samples)[-1].item())  # no surface: far


def test_projection_inverts_the_camera_rotation():
    azimuth = torch.tensor([0.7])
    cam = torch.tensor([[[0.3, -0.2, 0.5]]])
    assert project(rotate_y(cam, azimuth), azimuth)[0, 0].tolist() == pytest.approx([0.3, -0.2])
    # Ray samples of pixel (row 0, col 0) project back onto that pixel's centre.
    points = ray_points(azimuth, size=4, samples=3)
    torch.testing.assert_close(project(points[:, :3], azimuth)[0], torch.tensor([[-0.75, 0.75]] * 3))


def test_forward_kinematics_bends_the_elbow_about_its_pivot():
    theta = torch.zeros(1, body.NUM_BONES, 3)
    theta[0, 3, 2] = math.pi / 2  # left forearm 90° about z: the wrist points up
    joints = body.posed_joints(theta)[0]
    elbow, wrist = body.JOINTS[4], body.JOINTS[5]
    assert joints[4].tolist() == pytest.approx(elbow.tolist())
    expected = elbow + torch.tensor([0.0, (wrist - elbow)[0].item(), 0.0])
    assert joints[5].tolist() == pytest.approx(expected.tolist(), abs=1e-6)


def test_inverse_skinning_maps_posed_bone_points_back_to_canonical():
    gen = torch.Generator().manual_seed(0)
    theta = 0.5 * torch.randn(2, body.NUM_BONES, 3, generator=gen)
    a, b = body.canonical_segments()
    canonical = (0.5 * (a + b))[None].expand(2, -1, -1)  # capsule midpoints: one bone each
    r, t = body.forward_kinematics(theta)
    posed = body.apply(r[:, body.CAPSULE_BONE], t[:, body.CAPSULE_BONE], canonical)
    back = body.inverse_skinning(posed, theta, temperature=0.01)
    assert (back - canonical).abs().max().item() < 0.02
    assert body.proxy_sdf(canonical).max().item() < 0  # midpoints lie inside the body


def test_posed_proxy_sdf_moves_the_arm_with_the_pose_and_leaves_no_ghost():
    theta = torch.zeros(1, body.NUM_BONES, 3)
    rest_wrist = body.JOINTS[5][None, None]
    assert body.posed_proxy_sdf(rest_wrist, theta).item() < 0  # inside the forearm at rest
    theta[0, 2, 2] = -math.pi / 2  # left arm straight down
    assert body.posed_proxy_sdf(rest_wrist, theta).item() > 0.2  # the canonical arm is gone
    wrist = body.posed_joints(theta)[:, 5:6]
    assert body.posed_proxy_sdf(wrist, theta).item() < 0  # and is where the pose put it


def test_frozen_discriminator_passes_gradient_to_the_image_only():
    torch.manual_seed(0)
    d = Discriminator(width=4, size=8)
    image = torch.randn(2, 3, 8, 8, requires_grad=True)
    theta, azimuth = torch.zeros(2, body.NUM_BONES, 3), torch.zeros(2)
    d.frozen(image, theta, azimuth).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in d.parameters())
