"""Transforms of a network's raw output, by output type: guidance, temperature, class masks.

Each acts on the quantity in which it is exact and stays a valid output:
- ``"eps"`` / ``"x"`` (continuous): linear. x0_hat = mu/gamma - sqrt((1-gamma)/gamma) eps_hat is affine in
  eps_hat, so guiding eps_hat is guiding x0_hat before clipping (the clip is applied once, after).
- ``"eps_gaussian"`` (discretised): the mean channel linearly, as for ``"eps"``; the log-std channel is the
  conditional pass's (a combination of log-stds is not a guidance of the distribution).
- ``"logits"`` (discrete): linear in the logits, i.e. p proportional to p_c^(1+w) p_u^(-w): always a
  distribution, while (1+w) p_c - w p_u on probabilities can go negative.
- ``"probs"`` / ``"bin_probs"``: the same in log space, renormalised.
"""
from __future__ import annotations

import torch
from torch import Tensor

LINEAR = ("eps", "x", "logits")
LOG_SPACE = ("probs", "bin_probs")
CLASS_OUTPUTS = ("logits", "probs")


def _log(p: Tensor) -> Tensor:
    return p.clamp_min(1e-30).log()


def guide(cond: Tensor, uncond: Tensor, w: float, output_type: str) -> Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): (1 + w) cond - w uncond on the output type's quantity."""
    if output_type in LINEAR:
        return (1 + w) * cond - w * uncond
    if output_type in LOG_SPACE:
        return torch.softmax((1 + w) * _log(cond) - w * _log(uncond), -1)
    if output_type == "eps_gaussian":
        mean = (1 + w) * cond[..., :1] - w * uncond[..., :1]
        return torch.cat([mean, cond[..., 1:]], -1)
    raise ValueError(f"guidance is not defined for output_type {output_type!r}")


def temper(output: Tensor, temperature: float, output_type: str) -> Tensor:
    """Sampling temperature for class outputs: logits / T (probabilities p^(1/T), renormalised).

    It changes the target distribution (sharper for T < 1): a sampling choice, not solver accuracy."""
    if output_type == "logits":
        return output / temperature
    if output_type in LOG_SPACE:
        return torch.softmax(_log(output) / temperature, -1)
    raise ValueError(f"temperature applies to discrete outputs ('logits', 'probs', 'bin_probs'), not "
                     f"{output_type!r}; for continuous data use noise_scale with an SDE solver")


def mask_classes(output: Tensor, allowed: Tensor, output_type: str) -> Tensor:
    """Disallowed classes get probability zero and the rest is renormalised: the exact restriction
    p(k | k allowed) = p(k) 1[k allowed] / sum_j p(j) 1[j allowed]. ``allowed``: bool, broadcast to (..., K)."""
    if output_type == "logits":
        return output.masked_fill(~allowed, float("-inf"))
    if output_type == "probs":
        p = output * allowed
        return p / p.sum(-1, keepdim=True)
    raise ValueError(f"class_mask applies to discrete outputs ('logits' or 'probs'), not {output_type!r}")
