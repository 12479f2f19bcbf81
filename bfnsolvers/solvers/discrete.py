"""The published second-order discrete BFN-Solvers, which linearise e_hat in s = 1 - t
rather than in lambda (BFN-SDE, reference implementation; bfn-math.md Sec. 4).

Here x0 = K e_hat - 1, so K D1(e_hat) = D1(x0); s = 1 - t.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models import Denoiser
from ..processes import DiscreteBFN
from .common import Callback, NoiseSampler, default_noise, report


def _check(model: Denoiser) -> DiscreteBFN:
    if not isinstance(model.process, DiscreteBFN):
        raise ValueError(f"this solver is for discrete data (DiscreteBFN), got {model.process!r}")
    return model.process


@torch.no_grad()
def bfn_solver2_s(model: Denoiser, z: Tensor, ts: Tensor, *, callback: Callback | None = None) -> Tensor:
    """ODE, multistep: y' = (t'/t) y + beta_1 t' (t' - t) x0 - beta_1 t' (s' - s)^2 / 2 * D1,
    D1 = (x0 - x0_prev) / (s - s_prev); the first step is first order."""
    beta_1, t = _check(model).beta_1, ts.tolist()
    prev = None
    for i in range(len(t) - 1):
        x0 = model(z, ts[i])
        t0, t1 = t[i], t[i + 1]
        z_next = (t1 / t0) * z + beta_1 * t1 * (t1 - t0) * x0
        if prev is not None:
            d1 = (x0 - prev) / (t[i - 1] - t0)          # d x0 / ds, s = 1 - t
            z_next = z_next - beta_1 * t1 * (t1 - t0) ** 2 / 2 * d1
        prev = x0
        report(callback, i, t0, z, x0)
        z = z_next
    return z


@torch.no_grad()
def sde_bfn_solver2_s(model: Denoiser, z: Tensor, ts: Tensor, *, generator: torch.Generator | None = None,
                      noise_sampler: NoiseSampler | None = None, callback: Callback | None = None) -> Tensor:
    """SDE, multistep: y' = y + (beta' - beta) x0 + sqrt(K (beta' - beta)) noise
    + (1/3) beta_1 (s' - s)^2 (s + 2 s' - 3) D1; the first step is first order."""
    process = _check(model)
    beta_1, K, t = process.beta_1, process.num_classes, ts.tolist()
    noise = noise_sampler or default_noise(generator)
    prev = None
    for i in range(len(t) - 1):
        x0 = model(z, ts[i])
        t0, t1 = t[i], t[i + 1]
        db = beta_1 * (t1 ** 2 - t0 ** 2)
        z_next = z + db * x0
        if prev is not None:
            s0, s1 = 1 - t0, 1 - t1
            d1 = (x0 - prev) / (t[i - 1] - t0)
            z_next = z_next + beta_1 * (s1 - s0) ** 2 * (s0 + 2 * s1 - 3) / 3 * d1
        prev = x0
        report(callback, i, t0, z, x0)
        z = z_next + math.sqrt(K * db) * noise(z)
    return z
