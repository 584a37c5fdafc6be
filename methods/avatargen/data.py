"""Procedural training and test data: mini-SMPL people with garments, rendered exactly.

The design notes' §4(c) (not shipped): capsules + random garment SDF offsets (skirt cone,
wide sleeves, trousers, hair blob), per-part colours, random pose θ within joint limits and random
azimuth; the SDF is sampled densely along orthographic rays and the first sign change
gives mask and depth (render.first_hit). Each image is stored with its (θ, φ).
A node's people and poses differ from the other nodes' (§4(e)): node k raises its arms
within its own window of the shoulder range, and wears skirts with its own probability.

Packing (an ArrayDataset is N×C×H×W): channels 0–2 the image in [−1, 1], channel 3 the
flattened θ (30 values) then φ. Test sets hold the body proxy's mask and depth at the
target pose instead of an image (channels 0, 1).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from methods.avatargen import body
from methods.avatargen.render import first_hit, ray_points, rotate_y
from methods.common.datasets import ArrayDataset

POSE_DIM = body.NUM_BONES * 3
ARM_RANGE = (-1.3, 0.6)  # shoulder elevation about z (rad); 0 = arms out, negative = down
AZIMUTH = math.pi / 3  # φ ~ U(−π/3, π/3): frontal-ish views keep left/right identifiable
GT_SAMPLES = 32  # dense samples of the exact SDF for the ground-truth renders
TEST_SEED = 2208


def arm_window(node: int, nodes: int) -> tuple[float, float]:
    """Node `node`'s shoulder range: one of `nodes` equal, disjoint windows (low → high)."""
    lo, hi = ARM_RANGE
    width = (hi - lo) / nodes
    return lo + node * width, lo + (node + 1) * width


def sample_poses(n: int, arms: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """θ (n, 10, 3) within the joint limits; bone order as body.BONE_PARENT."""
    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    theta = torch.zeros(n, body.NUM_BONES, 3)
    theta[:, 0, 1] = u(-0.3, 0.3)                                 # root twist
    theta[:, 1, 0], theta[:, 1, 2] = u(-0.2, 0.2), u(-0.2, 0.2)   # head
    for bone, sign in ((2, 1.0), (4, -1.0)):                      # shoulders, elbows (mirrored)
        theta[:, bone, 2] = sign * u(*arms)
        theta[:, bone, 1] = u(-0.4, 0.4)
        theta[:, bone + 1, 2] = sign * u(-0.2, 1.2)
    for bone, sign in ((6, 1.0), (8, -1.0)):                      # hips, knees
        theta[:, bone, 0] = u(-0.8, 0.3)
        theta[:, bone, 2] = sign * u(0.0, 0.4)
        theta[:, bone + 1, 0] = u(0.0, 1.2)
    return theta


def sample_people(n: int, skirt_prob: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Garment offsets and colours of n people."""
    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=gen)

    return {"sleeve": u(0.0, 0.03), "trouser": u(0.0, 0.03), "hair": u(0.08, 0.13),
            "skirt": (torch.rand(n, generator=gen) < skirt_prob).float(),
            "shirt": u(0.1, 0.9, 3), "pants": u(0.1, 0.7, 3), "skin": u(0.55, 0.95, 1) *
            torch.tensor([1.0, 0.8, 0.65]), "hair_rgb": u(0.05, 0.5, 3)}


def person_parts(x: torch.Tensor, theta: torch.Tensor, people: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-part SDFs (B, N, 13) of dressed people: 11 capsules, hair, skirt."""
    a, b = body.posed_segments(theta)
    radius = body.CAPSULE_RADIUS.expand(len(x), -1).clone()
    radius[:, 3:7] += people["sleeve"][:, None]
    radius[:, 7:11] += people["trouser"][:, None]
    caps = body.capsule_sdf(x, a, b, radius[:, None])
    hair = (x - b[:, 2:3]).norm(dim=-1) - people["hair"][:, None]
    r, t = body.forward_kinematics(theta)
    local = ((x - t[:, None, 0]).unsqueeze(-2) @ r[:, None, 0]).squeeze(-2)  # root frame
    cone = 0.14 + 0.35 * (-0.05 - local[..., 1]).clamp_min(0)
    skirt = torch.maximum(local[..., [0, 2]].norm(dim=-1) - cone, (local[..., 1] + 0.25).abs() - 0.2)
    skirt = torch.where(people["skirt"][:, None] > 0, skirt, torch.full_like(skirt, 9.0))
    return torch.cat([caps, hair[..., None], skirt[..., None]], -1)


def part_colours(people: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, 13, 3) colour of each part: shirt on torso and upper arms, skin on head and
    forearms, trousers on pelvis, legs and skirt."""
    s, p, k, h = people["shirt"], people["pants"], people["skin"], people["hair_rgb"]
    return torch.stack([s, p, k, s, k, s, k, p, p, p, p, h, p], 1)


def render_people(theta: torch.Tensor, azimuth: torch.Tensor, people: dict[str, torch.Tensor] | None,
                  size: int, colour: bool = True) -> dict[str, torch.Tensor]:
    """Exact renders: image (B,3,H,W) in [−1,1] (people given, colour), mask and depth (B,H,W).
    people=None renders the bare body proxy (the test's pseudo ground truth)."""
    x = ray_points(azimuth, size, GT_SAMPLES)
    if people is None:
        mask, depth = first_hit(body.posed_proxy_sdf(x, theta), size, GT_SAMPLES)
        return {"mask": mask, "depth": depth}
    mask, depth = first_hit(person_parts(x, theta, people).min(-1).values, size, GT_SAMPLES)
    if not colour:
        return {"mask": mask, "depth": depth}
    hit = _surface(depth, azimuth, size).requires_grad_(True)
    with torch.enable_grad():
        parts = person_parts(hit, theta, people)
        normal = torch.autograd.grad(parts.min(-1).values.sum(), hit)[0]
    view = rotate_y(torch.tensor([[[0.0, 0.0, 1.0]]]).expand(len(theta), 1, 3), azimuth)
    shade = 0.45 + 0.55 * (torch.nn.functional.normalize(normal, dim=-1) * view).sum(-1).abs()
    colour = part_colours(people).gather(1, parts.argmin(-1)[..., None].expand(-1, -1, 3))
    rgb = torch.where(mask.reshape(len(theta), -1, 1), colour * shade[..., None], torch.ones(1))
    image = rgb.detach().transpose(1, 2).reshape(len(theta), 3, size, size) * 2 - 1
    return {"image": image, "mask": mask, "depth": depth}


def _surface(depth: torch.Tensor, azimuth: torch.Tensor, size: int) -> torch.Tensor:
    """World points (B, H·W, 3) at each pixel's depth."""
    from methods.avatargen.render import DEPTH_RANGE, pixel_grid

    grid = pixel_grid(size)[None].expand(len(depth), -1, -1)
    cam = torch.cat([grid, (DEPTH_RANGE - depth.reshape(len(depth), -1))[..., None]], -1)
    return rotate_y(cam, azimuth)


def pack_pose(theta: torch.Tensor, azimuth: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, H, W) plane holding θ (flattened) then φ."""
    plane = torch.zeros(len(theta), size * size)
    plane[:, :POSE_DIM] = theta.reshape(len(theta), -1)
    plane[:, POSE_DIM] = azimuth
    return plane.reshape(-1, 1, size, size)


def unpack_pose(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (θ (B,10,3), φ (B,)) of a packed batch (B, 4, H, W)."""
    flat = x[:, 3].reshape(len(x), -1)
    return flat[:, :POSE_DIM].reshape(-1, body.NUM_BONES, 3), flat[:, POSE_DIM]


def in_chunks(fn, n: int, chunk: int = 32) -> dict[str, torch.Tensor]:
    parts = [fn(slice(i, min(i + chunk, n))) for i in range(0, n, chunk)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def render_dressed(theta: torch.Tensor, azimuth: torch.Tensor, people: dict[str, torch.Tensor],
                   size: int, colour: bool = True) -> dict[str, torch.Tensor]:
    """render_people over a large batch, 32 people at a time (bounded memory)."""
    return in_chunks(lambda s: render_people(theta[s], azimuth[s],
                                             {k: v[s] for k, v in people.items()}, size, colour),
                     len(theta))


@functools.lru_cache(maxsize=4)
def node_images(nodes: int, per_node: int, size: int, seed: int) -> ArrayDataset:
    """Every node's images (label = node); node k's arms lie in arm_window(k, nodes)."""
    xs = []
    for node in range(nodes):
        gen = torch.Generator().manual_seed(seed * 1009 + node)
        theta = sample_poses(per_node, arm_window(node, nodes), gen)
        azimuth = (torch.rand(per_node, generator=gen) * 2 - 1) * AZIMUTH
        people = sample_people(per_node, skirt_prob=0.6 if node % 2 == 0 else 0.1, gen=gen)
        out = render_dressed(theta, azimuth, people, size)
        xs.append(torch.cat([out["image"], pack_pose(theta, azimuth, size)], 1))
    x = torch.cat(xs).numpy().astype(np.float32)
    x.flags.writeable = False  # shared by every caller in this process
    y = np.repeat(np.arange(nodes, dtype=np.int64), per_node)
    return ArrayDataset(x, y, max(nodes, 1), "avatargen-nodes")


@functools.lru_cache(maxsize=2)
def target_poses(count: int, size: int) -> ArrayDataset:
    """The server's test targets: poses over the whole shoulder range, proxy mask + depth."""
    gen = torch.Generator().manual_seed(TEST_SEED)
    theta = sample_poses(count, ARM_RANGE, gen)
    azimuth = (torch.rand(count, generator=gen) * 2 - 1) * AZIMUTH
    return targets_at(theta, azimuth, size, "avatargen-targets")


def targets_at(theta: torch.Tensor, azimuth: torch.Tensor, size: int, name: str) -> ArrayDataset:
    """Evaluation rows at the given poses: the bare proxy's mask and depth (the ground
    truth render_targets scores against), and the packed pose."""
    count = len(theta)
    out = in_chunks(lambda s: render_people(theta[s], azimuth[s], None, size), count)
    x = torch.cat([out["mask"].float()[:, None], out["depth"][:, None],
                   torch.zeros(count, 1, size, size), pack_pose(theta, azimuth, size)], 1)
    x = x.numpy().astype(np.float32)
    x.flags.writeable = False
    return ArrayDataset(x, np.zeros(count, np.int64), 1, name)
