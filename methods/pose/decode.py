"""Inference: poses from center peaks, dual-center fusion, OKS-NMS, multi-scale test.

Cheng et al., arXiv:2208.11975 §3 (inference; DEKR-style, Geng et al. CVPR 2021):
a person is a 3×3-local maximum of a center heatmap above a threshold; its pose is
J_k = x + h·Ô_k(x) with h = exp(log ĥ(x)) (the scale-normalised regression), scored
by the center's heat. With dual centers the body and head candidates are pooled;
a head and a body candidate whose poses agree (mean joint distance below
`fuse_distance` person heights) are one person and fused (score-weighted joints,
score 1 − (1 − s_b)(1 − s_h)), since the design notes' §3 pilot found unfused duplicates
ruin precision. OKS-NMS then removes the remaining duplicates. The multi-scale test
baseline runs the net on rescaled copies and pools every scale's candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from methods.pose.metrics import keypoint_area, oks
from methods.pose.targets import cell_centers


@dataclass(frozen=True)
class Decoding:
    centers: str = "dual"  # "body" or "dual"
    peak_threshold: float = 0.15
    nms_oks: float = 0.25
    fuse_distance: float = 0.15
    top_k: int = 20  # peaks per map and people per image (COCO keypoint maxDets)


@dataclass
class Candidates:
    """An image's pose candidates: N×K×2 joints (pixels), N heights, N scores."""

    joints: np.ndarray
    heights: np.ndarray
    scores: np.ndarray

    @classmethod
    def concat(cls, parts: list[Candidates]) -> Candidates:
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("joints", "heights", "scores")))

    def take(self, index) -> Candidates:
        return Candidates(self.joints[index], self.heights[index], self.scores[index])


def peaks(heat: torch.Tensor, offsets: torch.Tensor, log_height: torch.Tensor, threshold: float,
          top_k: int, scale: float = 1.0) -> list[Candidates]:
    """Per image, the candidates at the 3×3-local maxima of `heat` (B×1×G×G) above threshold.

    `scale`: the input was the image resized by this factor; poses come back in the
    original image's pixels.
    """
    batch, _, rows, cols = heat.shape
    is_peak = (heat == F.max_pool2d(heat, 3, stride=1, padding=1)) & (heat > threshold)
    score = torch.where(is_peak, heat, torch.zeros_like(heat)).flatten(1)
    top = score.topk(min(top_k, rows * cols), dim=1)
    gx, gy = cell_centers(cols)[0][0], cell_centers(rows)[1][:, 0]
    height = log_height.flatten(1).clamp(-3, 6).exp()  # B×G² (pixels of the resized input)
    offsets = offsets.flatten(2).view(batch, -1, 2, rows * cols)  # B×K×2×G²
    out = []
    for b in range(batch):
        keep = top.indices[b][top.values[b] > 0]
        h = height[b, keep]
        x = gx[keep % cols][:, None] + offsets[b, :, 0, keep].T * h[:, None]
        y = gy[keep // cols][:, None] + offsets[b, :, 1, keep].T * h[:, None]
        out.append(Candidates((torch.stack([x, y], -1) / scale).numpy(),
                              (h / scale).numpy(), score[b, keep].numpy()))
    return out


def fuse(body: Candidates, head: Candidates, max_distance: float) -> Candidates:
    """Merge head and body candidates of the same person; keep the unmatched of both."""
    if not len(body.scores) or not len(head.scores):
        return Candidates.concat([body, head])
    gap = np.linalg.norm(body.joints[:, None] - head.joints[None], axis=-1).mean(-1)
    gap /= (body.heights[:, None] + head.heights[None]) / 2
    pairs, used_b, used_h = [], set(), set()
    for i, j in zip(*np.unravel_index(np.argsort(gap, axis=None), gap.shape)):
        if gap[i, j] >= max_distance:
            break
        if i not in used_b and j not in used_h:
            pairs.append((i, j))
            used_b.add(i)
            used_h.add(j)
    fused = []
    for i, j in pairs:
        sb, sh = body.scores[i], head.scores[j]
        w = sb / max(sb + sh, 1e-9)
        fused.append(Candidates(
            (w * body.joints[i] + (1 - w) * head.joints[j])[None],
            np.array([w * body.heights[i] + (1 - w) * head.heights[j]]),
            np.array([1 - (1 - min(sb, 1.0)) * (1 - min(sh, 1.0))])))
    rest_b = [i for i in range(len(body.scores)) if i not in used_b]
    rest_h = [j for j in range(len(head.scores)) if j not in used_h]
    return Candidates.concat(fused + [body.take(rest_b), head.take(rest_h)])


def oks_nms(cands: Candidates, threshold: float, top_k: int) -> Candidates:
    """Greedy NMS by OKS: a candidate too similar to a better one is dropped."""
    order = np.argsort(-cands.scores, kind="stable")
    keep: list[int] = []
    for i in order:
        if len(keep) == top_k:
            break
        area = keypoint_area(cands.joints[i])
        if all(oks(cands.joints[i], cands.joints[k], np.ones(len(cands.joints[i]), bool),
                   area) <= threshold for k in keep):
            keep.append(i)
    return cands.take(keep)


def predict(model, images: torch.Tensor, decoding: Decoding,
            scales: tuple[float, ...] = (1.0,)) -> list[Candidates]:
    """Each image's final poses; several `scales` = the multi-scale test."""
    kinds = ("body",) if decoding.centers == "body" else ("body", "head")
    per_scale: list[dict[str, list[Candidates]]] = []
    for scale in scales:
        x = images if scale == 1.0 else F.interpolate(
            images, scale_factor=scale, mode="bilinear", align_corners=False, antialias=scale < 1)
        out = model(x)
        per_scale.append({k: peaks(*out[k], decoding.peak_threshold, decoding.top_k, scale)
                          for k in kinds})
    results = []
    for i in range(len(images)):
        body = Candidates.concat([s["body"][i] for s in per_scale])
        if decoding.centers == "dual":
            head = Candidates.concat([s["head"][i] for s in per_scale])
            body = fuse(body, head, decoding.fuse_distance)
        results.append(oks_nms(body, decoding.nms_oks, decoding.top_k))
    return results
