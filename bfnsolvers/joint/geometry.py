"""Geometry of coordinate modalities: zero centre of mass per molecule, node masks, degrees of freedom.

Coordinates x (B, N, D) of a molecule with n real nodes live on the (n - 1) D dimensional subspace
sum_l x_l = 0 (over real nodes). A standard normal on that subspace is P eps with P the centring
projection; its density (and any Gaussian likelihood of a coordinate state) is normalised with
(n - 1) D degrees of freedom, not n D.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.special import ndtri

from ..constraints import CentreOfMass
from ..rng import PerSample, RandomSource, rand


def check_node_mask(mask: Tensor | None, batch: int, nodes: int) -> Tensor | None:
    """A bool (B, N) mask, True for real nodes, at least one per molecule."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
        raise ValueError("mask must be a bool tensor (B, N), True for real nodes")
    if tuple(mask.shape) != (batch, nodes):
        raise ValueError(f"mask must have shape (B, N) = ({batch}, {nodes}), got {tuple(mask.shape)}")
    if not bool(mask.any(1).all()):
        raise ValueError("mask: every molecule needs at least one real node")
    return mask


def com_project(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """x - centre of mass over real nodes, per molecule (padded rows untouched): ``CentreOfMass.project``."""
    return CentreOfMass(mask).project(x)


def centre_of_mass(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of x (B, N, D) over the real nodes: (B, D)."""
    m = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device) if mask is None else mask.to(x.device, x.dtype)
    return (x * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)


def degrees_of_freedom(mask: Tensor | None, nodes: int, dim: int, batch: int = 1) -> Tensor:
    """(n - 1) D per molecule: the dimension of the zero-CoM subspace of n real nodes in D dims."""
    n = torch.full((batch,), nodes) if mask is None else mask.sum(1)
    return (n - 1) * dim


def com_free_gaussian_log_prob(x: Tensor, mean: Tensor, var: float | Tensor, mask: Tensor | None = None) -> Tensor:
    """log N(x; mean, var P) on the zero-CoM subspace, per molecule (B,): x, mean (B, N, D) with zero CoM;
    -||x - mean||^2 / (2 var) - (n - 1) D / 2 ln(2 pi var), the sum over real nodes."""
    m = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.to(x.device)
    d2 = (((x - mean) ** 2).sum(-1) * m).sum(1)
    dof = degrees_of_freedom(m, x.shape[1], x.shape[2], x.shape[0]).to(x.dtype)
    var = torch.as_tensor(var, dtype=x.dtype, device=x.device)
    return -d2 / (2 * var) - 0.5 * dof * torch.log(2 * math.pi * var)


class FreshPerDraw(PerSample):
    """One seed per sample; every draw uses fresh generators seeded by (seed_i, draw index), so that the values
    a draw gives a sample's real nodes never depend on how many values earlier draws took (its padding)."""

    def __init__(self, seeds: list[int], device=None):
        self.seeds, self.device, self.draws = [int(s) for s in seeds], device, 0

    def __len__(self) -> int:
        return len(self.seeds)

    @property
    def generators(self) -> list[torch.Generator]:
        """Fresh generators for the next draw (``bfnsolvers.rng`` reads this once per draw)."""
        k, self.draws = self.draws, self.draws + 1
        return [torch.Generator(self.device or "cpu").manual_seed((s + k * 0x9E3779B97F4A7C15) % 2 ** 63) for s in self.seeds]


def normal(shape: tuple[int, ...], source: RandomSource, dtype: torch.dtype, device) -> Tensor:
    """Standard normal draws Phi^-1(u), u uniform (float64): with ``PerSample`` row i's draws are a prefix
    of any larger draw of the same generator (torch.rand is sequential; torch.randn is not above 16
    values), so a molecule padded with trailing nodes gets the same noise on its real nodes."""
    u = rand(shape, source, torch.float64, device).clamp(1e-300, 1 - 2 ** -53)
    return ndtri(u).to(dtype)


def node_noise(shape: tuple[int, ...], source: RandomSource, dtype: torch.dtype, device, mask: Tensor | None,
               zero_com: bool) -> Tensor:
    """Noise for a node modality (B, N, ...): standard normal, zero on padded nodes, projected to zero CoM
    for coordinates (a standard normal on the (n - 1) D subspace)."""
    eps = normal(shape, source, dtype, device)
    if mask is not None:
        keep = mask.to(device).reshape(mask.shape + (1,) * (len(shape) - 2))
        eps = eps * keep.to(dtype)
    return com_project(eps, mask) if zero_com else eps


__all__ = ["check_node_mask", "com_project", "centre_of_mass", "degrees_of_freedom", "com_free_gaussian_log_prob",
           "normal", "node_noise", "PerSample", "FreshPerDraw"]
