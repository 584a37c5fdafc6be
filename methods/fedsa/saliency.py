"""Grad-CAM saliency and the teacher similarity of FedSA (official code, notes §1.2–1.3).

Grad-CAM (Selvaraju et al., ICCV 2017, Eq. 1–2), as in KamalEngine's
kamal/utils/saliency_map.py: A = the map of the named layer (by default the
model's last spatial stage, architectures.py), c* = argmax of the model's OWN
logits (the probe labels are never used, so a teacher with another label space
works alike),

    w_k = mean_ij ∂y_c*/∂A_k(i,j),   cam = ReLU(1 + Σ_k w_k A_k)

("1 +" is the official code's initialisation quirk; kept), min-max
normalised per sample and resized to the input (bilinear; the official
uint8 quantisation + area resize is dropped at this scale, §3.1).

Similarity (kamal/utils/model_select.py): sim_i = Σ_n (0.5 + 0.5·cos(S_s[n], S_i[n]))
∈ [0, N_p], summed over the N_p probe images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.common.modules import named_module
from methods.fedsa.architectures import resolve_layer


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str = "") -> torch.Tensor:
    """Saliency maps N×(H·W) in [0, 1] of images x (N×C×H×W) at `layer` (dotted name; "" = the
    last spatial stage); puts the model in eval mode. Model and x share a device; the maps
    are on it."""
    layer = resolve_layer(model, tuple(x.shape[1:]), layer, key="Grad-CAM layer")
    model.eval()
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        if not output.requires_grad:  # a frozen model: A must still take a gradient
            output = output.detach().requires_grad_(True)
        captured.append(output)
        return output

    handle = named_module(model, layer).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(x.detach())
            maps = captured[0]  # A: N×C×h×w
            predicted = logits.argmax(dim=1, keepdim=True)
            # Samples are independent in eval mode, so one backward of the summed scores
            # gives every sample's own ∂y_c*/∂A.
            (grads,) = torch.autograd.grad(logits.gather(1, predicted).sum(), maps)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)  # w_k: N×C×1×1
    cam = F.relu(1.0 + (weights * maps).sum(dim=1, keepdim=True)).detach()  # N×1×h×w
    low = cam.amin(dim=(2, 3), keepdim=True)
    high = cam.amax(dim=(2, 3), keepdim=True)
    cam = (cam - low) / (high - low).clamp_min(1e-12)
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return cam.flatten(start_dim=1)


def saliency_similarity(student_maps: torch.Tensor, teacher_maps: torch.Tensor) -> float:
    """sim = Σ_n (0.5 + 0.5·cos(S_s[n], S_t[n])); maps are N×D."""
    if student_maps.shape != teacher_maps.shape:
        raise ValueError(f"saliency maps differ in shape: {tuple(student_maps.shape)} vs "
                         f"{tuple(teacher_maps.shape)}")
    cosine = F.cosine_similarity(student_maps, teacher_maps, dim=1, eps=1e-8)
    return float((0.5 + 0.5 * cosine).sum())
