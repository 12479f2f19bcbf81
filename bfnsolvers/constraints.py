"""Per-step constraints: ``constraint(z, t) -> z`` replaces the state the network sees at every call
and the final state (``sample(..., constraint=...)``); an optional ``samples(x)`` fixes the samples.

For the built-in solvers, whose updates act on the state elementwise (or linearly with scalar
coefficients), this is the same as replacing the solver's own state after every step: the
replaced part never feeds back except through the network, and a linear projection commutes
with the update.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .processes import BFNProcess
from .processes.base import expand_time
from .rng import randn


class Inpaint:
    """Hold known values: the known part of the state is replaced at every call.

    mode="flow" (the default for continuous and discretised data): by an exact draw from its Bayesian flow at the current time given the known values,
    z_k ~ p_F(z | x_k; t) = N(a(t) x0_k, s(t)^2 I) (the replacement method of diffusion inpainting).
    It conditions the rest on a noisy copy of x_k, so it is approximate: the network's prediction is
    E[x_u | z_u, z_k], not E[x_u | z_u, x_k] (measured on the oracles in tests/test_conditioning.py).
    mode="pin" (discrete data, its default): the known tokens' state is the point mass theta = e_{x_k} (the limit of
    the flow as beta -> infinity), so a network reading theta sees the known tokens exactly; exact on the
    Markov oracle, whose likelihood of a token is theta alone (mode="flow" is far off there: chi-square
    13000 on 20 degrees of freedom, bfn-unipc3-t at NFE 50).
    known: samples-shaped values (class indices for discrete data); mask: bool, True where known.
    """

    def __init__(self, process: BFNProcess, known: Tensor, mask: Tensor, mode: Literal["flow", "pin"] | None = None,
                 generator: torch.Generator | None = None):
        if not isinstance(known, Tensor) or not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise ValueError("known must be a tensor and mask a bool tensor (True where the value is known)")
        if mask.shape != known.shape:
            raise ValueError(f"mask must have known's shape {tuple(known.shape)}, got {tuple(mask.shape)}")
        self.discrete = process.kind == "discrete"
        mode = ("pin" if self.discrete else "flow") if mode is None else mode
        if mode not in ("flow", "pin"):
            raise ValueError(f"mode must be 'flow' or 'pin', got {mode!r}")
        if mode == "pin" and not self.discrete:
            raise ValueError("mode='pin' is for discrete data (a point mass theta = e_x); use mode='flow'")
        self.process, self.known, self.mask, self.mode, self.generator = process, known, mask, mode, generator
        self.x0 = process.to_x0(torch.where(mask, known, torch.zeros_like(known)))

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        x0 = self.x0.to(z.device, z.dtype)
        mask = self.mask.to(z.device)
        if self.discrete:
            mask = mask.unsqueeze(-1)
        if self.mode == "pin":
            held = 50.0 / self.process.num_classes * x0       # softmax = e_x to exp(-50)
        else:
            tt = expand_time(t.to(z.device), z)
            held = self.process.a(tt) * x0 + self.process.s(tt) * randn(z.shape, self.generator, z.dtype, z.device)
        return torch.where(mask, held.to(z.dtype), z)

    def samples(self, x: Tensor) -> Tensor:
        """The known values, exactly, where the mask is set."""
        return torch.where(self.mask.to(x.device), self.known.to(x.device, x.dtype), x)


class CentreOfMass:
    """Project coordinates (B, N, D) onto zero centre of mass per sample: x - mean over the N nodes.

    node_mask (B, N), True for real nodes: the mean is over real nodes, padded ones are left as they are."""

    def __init__(self, node_mask: Tensor | None = None):
        if node_mask is not None and (not isinstance(node_mask, Tensor) or node_mask.dtype != torch.bool
                                      or node_mask.dim() != 2):
            raise ValueError("node_mask must be a bool tensor (B, N), True for real nodes")
        self.node_mask = node_mask

    def project(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"CentreOfMass needs coordinates (B, N, D), got shape {tuple(x.shape)}")
        if self.node_mask is None:
            return x - x.mean(1, keepdim=True)
        m = self.node_mask.to(x.device).unsqueeze(-1).to(x.dtype)
        centre = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)
        return x - centre * m

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        return self.project(z)

    def samples(self, x: Tensor) -> Tensor:
        return self.project(x)
