"""Mini-SMPL: an articulated body proxy of 11 capsules on 10 bones, with forward kinematics,
the proxy SDF d_proxy and inverse linear-blend skinning (AvatarGen, Zhang et al.,
arXiv:2208.00561, Sec. 3.2: x̄ = Σ_k w_k(x_o)·G_k(θ)⁻¹·x_o, the SMPL-guided canonical mapping).

The SMPL mesh is replaced by capsules (design notes §4(c), not shipped); nearest-vertex skinning by
w = softmax(−dist_to_bone / τ_w), τ_w = 0.05. We blend the per-bone inverse maps (the
paper's "inverse of the blended transform" differs only where bones overlap).
Coordinates: y up, the figure spans y ∈ [−0.85, 0.75] in the canonical arms-out pose.
"""

from __future__ import annotations

import torch

# Canonical joints (arms-out pose).
JOINTS = torch.tensor([
    [0.0, -0.05, 0.0], [0.0, 0.40, 0.0], [0.0, 0.72, 0.0],            # pelvis, neck, head top
    [0.15, 0.36, 0.0], [0.40, 0.36, 0.0], [0.63, 0.36, 0.0],          # L shoulder, elbow, wrist
    [-0.15, 0.36, 0.0], [-0.40, 0.36, 0.0], [-0.63, 0.36, 0.0],       # R shoulder, elbow, wrist
    [0.10, -0.10, 0.0], [0.11, -0.47, 0.0], [0.12, -0.83, 0.0],       # L hip, knee, ankle
    [-0.10, -0.10, 0.0], [-0.11, -0.47, 0.0], [-0.12, -0.83, 0.0],    # R hip, knee, ankle
])
NUM_BONES = 10
# Each bone: (parent bone, joint it rotates about). Bone 0 is the root (torso + pelvis).
BONE_PARENT = (-1, 0, 0, 2, 0, 4, 0, 6, 0, 8)
BONE_PIVOT = (0, 1, 3, 4, 6, 7, 9, 10, 12, 13)
# Which bone carries each joint (the keypoints a renderer must place).
JOINT_BONE = (0, 0, 1, 0, 2, 3, 0, 4, 5, 0, 6, 7, 0, 8, 9)
# Capsules: (bone, joint a, joint b, radius); the head is shortened below the head top.
CAPSULES = (
    (0, 0, 1, 0.15), (0, 9, 12, 0.11), (1, 1, 2, 0.10),
    (2, 3, 4, 0.065), (3, 4, 5, 0.06), (4, 6, 7, 0.065), (5, 7, 8, 0.06),
    (6, 9, 10, 0.08), (7, 10, 11, 0.07), (8, 12, 13, 0.08), (9, 13, 14, 0.07),
)
CAPSULE_BONE = torch.tensor([c[0] for c in CAPSULES])
CAPSULE_RADIUS = torch.tensor([c[3] for c in CAPSULES])
HEAD_TRIM = 0.10  # the head capsule ends this far below the head-top joint (a round skull)


def canonical_segments() -> tuple[torch.Tensor, torch.Tensor]:
    """(C, 3) start and end points of the capsules in the canonical pose."""
    a = JOINTS[[c[1] for c in CAPSULES]].clone()
    b = JOINTS[[c[2] for c in CAPSULES]].clone()
    b[2, 1] -= HEAD_TRIM
    a[2, 1] += 0.08
    return a, b


def rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle → (..., 3, 3) rotation matrices."""
    angle = axis_angle.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    k = axis_angle / angle
    zero = torch.zeros_like(k[..., 0])
    cross = torch.stack([zero, -k[..., 2], k[..., 1], k[..., 2], zero, -k[..., 0],
                         -k[..., 1], k[..., 0], zero], -1).reshape(*k.shape[:-1], 3, 3)
    s, c = angle.sin()[..., None], angle.cos()[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype).expand_as(cross)
    return eye + s * cross + (1 - c) * cross @ cross


def forward_kinematics(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """θ (B, 10, 3) → bone transforms G_k as (R (B,10,3,3), t (B,10,3)): x_o = R x_c + t."""
    local_r = rodrigues(theta)
    pivots = JOINTS[list(BONE_PIVOT)].to(theta)
    local_t = pivots - (local_r @ pivots[..., None])[..., 0]  # rotate about the pivot joint
    rs, ts = [], []
    for k in range(NUM_BONES):
        p = BONE_PARENT[k]
        if p < 0:
            rs.append(local_r[:, k]), ts.append(local_t[:, k])
        else:
            rs.append(rs[p] @ local_r[:, k])
            ts.append((rs[p] @ local_t[:, k, :, None])[..., 0] + ts[p])
    return torch.stack(rs, 1), torch.stack(ts, 1)


def apply(r: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Rigid map of points: r (..., 3, 3), t (..., 3), x (..., 3)."""
    return (r @ x[..., None])[..., 0] + t


def posed_joints(theta: torch.Tensor) -> torch.Tensor:
    """(B, 15, 3) joint positions in observation space."""
    r, t = forward_kinematics(theta)
    bone = list(JOINT_BONE)
    return apply(r[:, bone], t[:, bone], JOINTS.to(theta).expand(len(theta), -1, -1))


def posed_segments(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, 3) capsule end points in observation space."""
    r, t = forward_kinematics(theta)
    a, b = canonical_segments()
    rb, tb = r[:, CAPSULE_BONE], t[:, CAPSULE_BONE]
    return apply(rb, tb, a.to(theta)), apply(rb, tb, b.to(theta))


def segment_distance(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance of points x (B, N, 3) to segments a, b (B, C, 3) → (B, N, C)."""
    ab = (b - a)[:, None]
    ax = x[:, :, None] - a[:, None]
    h = ((ax * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-8)).clamp(0, 1)
    return (ax - h[..., None] * ab).norm(dim=-1)


def capsule_sdf(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                radius: torch.Tensor) -> torch.Tensor:
    """Per-capsule signed distances (B, N, C); radius broadcasts as (C,) or (B, 1, C)."""
    return segment_distance(x, a, b) - radius


def proxy_sdf(x_c: torch.Tensor) -> torch.Tensor:
    """d_proxy: the canonical body's SDF at canonical points x_c (B, N, 3) → (B, N)."""
    a, b = canonical_segments()
    batch = len(x_c)
    d = capsule_sdf(x_c, a.to(x_c).expand(batch, -1, -1), b.to(x_c).expand(batch, -1, -1),
                    CAPSULE_RADIUS.to(x_c))
    return d.min(-1).values


def posed_proxy_sdf(x_o: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """d_proxy at observation points (B, N): min over capsules c of d_c(G_c⁻¹ x_o).

    Rigid maps keep distances, so this is the canonical proxy SDF of each capsule at its own
    canonicalised point; unlike d_proxy(LBS⁻¹(x_o)) it has no ghost limbs where the blended
    inverse map sends an off-body point into a canonical limb (e.g. arms-out vs arms-down).
    """
    a, b = posed_segments(theta)
    return capsule_sdf(x_o, a, b, CAPSULE_RADIUS.to(x_o)).min(-1).values


def bone_distance(x_o: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(B, N, 10) distance of observation points to each posed bone (its capsules' axes)."""
    a, b = posed_segments(theta)
    dist = segment_distance(x_o, a, b)
    per_bone = [dist[..., CAPSULE_BONE == k].min(-1).values for k in range(NUM_BONES)]
    return torch.stack(per_bone, -1)


def inverse_skinning(x_o: torch.Tensor, theta: torch.Tensor,
                     temperature: float = 0.05) -> torch.Tensor:
    """x̄ = Σ_k w_k(x_o)·G_k⁻¹(x_o), w = softmax(−dist/τ_w): observation → canonical (B, N, 3)."""
    r, t = forward_kinematics(theta)
    w = torch.softmax(-bone_distance(x_o, theta) / temperature, dim=-1)
    # G_k⁻¹ x = R_kᵀ (x − t_k) for every bone: (B, N, 10, 3)
    local = ((x_o[:, :, None] - t[:, None]).unsqueeze(-2) @ r[:, None]).squeeze(-2)
    return (w[..., None] * local).sum(2)
