"""OKS-based average precision and recall, COCO keypoint protocol, for stick figures.

OKS (COCO keypoint evaluation; Ruggero Ronchi & Perona, ICCV 2017):
    OKS = Σ_k v_k · exp(−d_k² / (2 s² κ_k²)) / Σ_k v_k,  κ_k = 2σ_k,  s² = the person's area
with the COCO σ of the matching joints (design notes §3(c), not shipped) and area = the
bounding-box area of the ground-truth joints. AP is COCO's: detections of all images
ranked by score, greedily matched to unmatched ground truth at OKS ≥ t, 101-point
interpolated precision. Size ranges as in COCO's area ranges: ground truth outside
the range is ignored (a detection matched to it counts neither way), as is an
unmatched detection whose predicted height lies outside the range.
"""

from __future__ import annotations

import numpy as np

# head top, neck, shoulders .079; elbows .072; wrists .062; hips .107; knees .087; ankles .089
SIGMAS = np.array([.079, .079, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087,
                   .089, .089])


def keypoint_area(joints: np.ndarray) -> float:
    """Bounding-box area (pixels²) of K×2 joints, at least 1."""
    extent = joints.max(0) - joints.min(0)
    return float(max(extent[0] * extent[1], 1.0))


def oks(pred: np.ndarray, truth: np.ndarray, visible: np.ndarray, area: float) -> float:
    """Object keypoint similarity of K×2 predicted joints against the truth's visible ones."""
    if not visible.any():
        return 0.0
    d2 = ((pred - truth) ** 2).sum(-1)
    kappa = 2 * SIGMAS[: len(d2)]
    return float(np.exp(-d2 / (2 * area * kappa ** 2))[visible].mean())


def _match_image(joints, heights, scores, truth, threshold, in_range):
    """(score, true positive, ignored) per detection of one image at one OKS threshold."""
    gt_joints, gt_visible, gt_heights = truth
    gt_ignored = ~in_range(gt_heights)
    sims = np.array([[oks(p, g, v, keypoint_area(g)) for g, v in zip(gt_joints, gt_visible)]
                     for p in joints]).reshape(len(joints), len(gt_joints))
    taken = np.zeros(len(gt_joints), bool)
    rows = []
    for d in np.argsort(-scores, kind="stable"):
        best = -1
        for ignored in (False, True):  # a match with counted ground truth comes first
            options = np.flatnonzero(~taken & (gt_ignored == ignored) & (sims[d] >= threshold))
            if len(options):
                best = options[np.argmax(sims[d, options])]
                break
        if best >= 0:
            taken[best] = True
            rows.append((scores[d], not gt_ignored[best], bool(gt_ignored[best])))
        else:
            rows.append((scores[d], False, not bool(in_range(heights[d:d + 1])[0])))
    return rows, int((~gt_ignored).sum())


def average_precision(detections, truths, threshold: float = 0.5,
                      max_height: float = np.inf) -> tuple[float, float]:
    """(AP, recall) at one OKS threshold over persons shorter than `max_height` pixels.

    detections: per image (joints N×K×2, heights N, scores N); truths: per image
    (joints M×K×2, visible M×K, heights M).
    """
    def in_range(heights):
        return np.asarray(heights) < max_height

    rows, positives = [], 0
    for (joints, heights, scores), truth in zip(detections, truths):
        image_rows, image_positives = _match_image(joints, heights, scores, truth, threshold,
                                                   in_range)
        rows += image_rows
        positives += image_positives
    if positives == 0:
        return 0.0, 0.0
    rows = sorted((r for r in rows if not r[2]), key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in rows], dtype=float)
    fp = np.cumsum([not r[1] for r in rows], dtype=float)
    if not len(rows):
        return 0.0, 0.0
    recall = tp / positives
    precision = np.maximum.accumulate((tp / np.maximum(tp + fp, 1e-9))[::-1])[::-1]
    points = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    ap = float(np.mean([precision[i] if i < len(precision) else 0.0 for i in points]))
    return ap, float(recall[-1])


def coco_ap(detections, truths, max_height: float = np.inf) -> float:
    """AP averaged over OKS thresholds 0.50:0.05:0.95 (COCO's headline AP)."""
    return float(np.mean([average_precision(detections, truths, t, max_height)[0]
                          for t in np.linspace(0.5, 0.95, 10)]))
