"""Training targets of the dual-center pose net, and multi-scale training.

Cheng et al., arXiv:2208.11975 §3: a person is found at an anatomical center and
its keypoints are regressed from there. The body center is the mean of the
person's visible keypoints (DEKR, Geng et al. CVPR 2021); the head center is the
mean of head top and neck (design notes §3(c), not shipped). Per center kind the targets at
32×32 cells are a Gaussian heatmap with σ = max(0.6, 0.08h) cells and, within
radius max(1, 0.15h) cells of the center, the keypoints' offsets divided by the
person's height h plus log h (the human-scale normalisation). Multi-scale training
(§3, "multi-scale training") rescales each image by s ~ U[s_min, s_max] before this.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from methods.pose.figures import SIZE
from methods.pose.nets import STRIDE


@dataclass
class People:
    """A batch's ground truth (torch): P people slots per image."""

    present: torch.Tensor  # B×P bool
    height: torch.Tensor  # B×P pixels
    keypoints: torch.Tensor  # B×P×K×2 pixels (x, y)
    visible: torch.Tensor  # B×P×K bool

    def centers(self, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(B×P×2 center, B×P valid) of the `kind` ("body" or "head") anatomical center."""
        vis = self.visible.float()
        if kind == "body":
            count = vis.sum(-1)
            center = (self.keypoints * vis[..., None]).sum(-2) / count.clamp(min=1)[..., None]
            return center, self.present & (count > 0)
        center = self.keypoints[:, :, :2].mean(-2)
        return center, self.present & self.visible[:, :, :2].all(-1)


@dataclass
class CenterTargets:
    heatmap: torch.Tensor  # B×1×G×G
    offsets: torch.Tensor  # B×2K×G×G, (keypoint − cell) / h
    log_height: torch.Tensor  # B×1×G×G
    mask: torch.Tensor  # B×2K×G×G: 1 where an offset is supervised (owned cell, visible joint)
    weight: torch.Tensor  # B×1×G×G: 1/√(cells of the owner) at owned cells, else 0


def cell_centers(grid: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (x, y) of the G×G cell centers of a stride-2 map."""
    coords = torch.arange(grid, dtype=torch.float32, device=device) * STRIDE + STRIDE / 2
    return coords[None, :].expand(grid, grid), coords[:, None].expand(grid, grid)


def center_targets(people: People, kind: str, grid: int = SIZE // STRIDE) -> CenterTargets:
    """The heatmap and offset targets of one center kind for a batch."""
    center, valid = people.centers(kind)
    gx, gy = cell_centers(grid)
    dist2 = ((gx - center[..., 0, None, None]) ** 2
             + (gy - center[..., 1, None, None]) ** 2) / STRIDE ** 2  # B×P×G×G, cells²
    sigma = (0.08 * people.height).clamp(min=0.6)[..., None, None]
    gauss = torch.exp(-dist2 / (2 * sigma ** 2)) * valid[..., None, None]
    heatmap = gauss.amax(1, keepdim=True)
    radius = (0.15 * people.height).clamp(min=1.0)[..., None, None]
    inside = (dist2 <= radius ** 2) & valid[..., None, None]
    # A cell inside several people's radius regresses the nearest one.
    owner = torch.where(inside, dist2, torch.full_like(dist2, float("inf"))).argmin(1)  # B×G×G
    owned = inside.any(1)  # B×G×G
    def pick(values: torch.Tensor) -> torch.Tensor:
        """B×P×... per-person values → B×...×G×G, the owner's value at each cell (0 elsewhere)."""
        flat = values.reshape(*values.shape[:2], -1)  # B×P×F
        index = owner.reshape(owner.shape[0], -1, 1).expand(-1, -1, flat.shape[-1])
        cells = flat.gather(1, index) * owned.reshape(owned.shape[0], -1, 1)  # B×G²×F
        return cells.transpose(1, 2).reshape(*values.shape[:1], *values.shape[2:], grid, grid)

    height = pick(people.height).clamp(min=1e-3)  # B×G×G (1e-3 where nobody owns the cell)
    kps = pick(people.keypoints)  # B×K×2×G×G
    offsets = torch.stack([(kps[:, :, 0] - gx) / height[:, None],
                           (kps[:, :, 1] - gy) / height[:, None]], 2)  # B×K×2×G×G
    mask = pick(people.visible.float())[:, :, None].expand_as(offsets)
    per_cell = torch.zeros(people.present.shape).index_put_(
        (owned.nonzero()[:, 0], owner[owned]), torch.ones(int(owned.sum())), accumulate=True)
    per_person = per_cell.clamp(min=1).rsqrt() * (per_cell > 0)
    weight = pick(per_person)
    return CenterTargets(heatmap, offsets.flatten(1, 2), torch.log(height)[:, None],
                         mask.flatten(1, 2) * owned[:, None], weight[:, None])


def rescale(image: torch.Tensor, people: People, scale: torch.Tensor,
            shift: torch.Tensor) -> tuple[torch.Tensor, People]:
    """Zoom each image by scale[b] about its center, then move it by shift[b] pixels.

    x' = s·(x − 32) + 32 + t; zooming out pads with zeros (the data's mean), zooming
    in crops. Keypoints follow; a joint that leaves the frame is no longer visible.
    """
    half = SIZE / 2
    theta = torch.zeros(image.shape[0], 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = -shift / (half * scale[:, None])
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    zoomed = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    s, t = scale[:, None, None, None], shift[:, None, None, :]
    keypoints = s * (people.keypoints - half) + half + t
    inside = ((keypoints >= 0) & (keypoints < SIZE)).all(-1)
    visible = people.visible & inside
    moved = People(people.present & visible.any(-1), people.height * scale[:, None],
                   keypoints, visible)
    return zoomed, moved


def random_rescale(image: torch.Tensor, people: People, scale_min: float,
                   scale_max: float) -> tuple[torch.Tensor, People]:
    """Multi-scale training: s ~ U[s_min, s_max], shift within the crop/pad margin."""
    n = image.shape[0]
    scale = torch.empty(n).uniform_(scale_min, scale_max)
    margin = (scale - 1).abs() * SIZE / 2
    shift = (torch.rand(n, 2) * 2 - 1) * margin[:, None]
    return rescale(image, people, scale, shift)
