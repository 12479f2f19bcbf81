"""Stochastic BFN-Solvers: exponential integrators of the reverse SDE in lambda (BFN-SDE Sec. 5)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..denoiser import Denoiser
from .common import Callback, NoiseSampler, default_noise, notify, sde_coefficients
from .ode import step_order


@torch.no_grad()
def sde_bfn_solver_pp(model: Denoiser, z: Tensor, ts: Tensor, *, order: int = 2, lower_order_final: bool = False,
                      generator: torch.Generator | None = None, noise_sampler: NoiseSampler | None = None,
                      callback: Callback | None = None) -> Tensor:
    """SDE-BFN-Solver++1/2 (data prediction, multistep):
    z' = (s'/s) e^-h z + a' (1 - e^-2h) D + s' sqrt(1 - e^-2h) noise, D = x0 + (x0 - x0_prev)/(2r).
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2 for SDE-BFN-Solver++, got {order}")
    a, s, lam = sde_coefficients(model.process, ts)
    times = ts.tolist()                             # host numbers: no tensor indexing per step
    noise = noise_sampler or default_noise(generator)
    n, prev = len(ts) - 1, None
    for i in range(n):
        x0 = model(z, times[i])
        h = lam[i + 1] - lam[i]
        d = x0
        if prev is not None and step_order(order, i, n, lower_order_final) == 2:
            d = x0 + (x0 - prev[1]) * (h / (lam[i] - prev[0])) / 2
        prev = (lam[i], x0)
        notify(callback, i, times[i], z, x0)
        em2h = -math.expm1(-2 * h)                       # 1 - e^-2h
        z = (s[i + 1] / s[i]) * math.exp(-h) * z + a[i + 1] * em2h * d + s[i + 1] * math.sqrt(em2h) * noise(z)
    return z


@torch.no_grad()
def sde_bfn_solver(model: Denoiser, z: Tensor, ts: Tensor, *, order: int = 2, lower_order_final: bool = False,
                   generator: torch.Generator | None = None, noise_sampler: NoiseSampler | None = None,
                   callback: Callback | None = None) -> Tensor:
    """SDE-BFN-Solver1/2 (noise prediction, multistep):
    z' = (a'/a) z - 2 s' (e^h - 1) eps - s' (e^h - 1) (eps - eps_prev)/r + s' sqrt(e^2h - 1) noise.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2 for SDE-BFN-Solver, got {order}")
    a, s, lam = sde_coefficients(model.process, ts)
    times = ts.tolist()                             # host numbers: no tensor indexing per step
    noise = noise_sampler or default_noise(generator)
    n, prev = len(ts) - 1, None
    for i in range(n):
        x0 = model(z, times[i])
        eps = (z - a[i] * x0) / s[i]
        h = lam[i + 1] - lam[i]
        eh = math.expm1(h)
        z_next = (a[i + 1] / a[i]) * z - 2 * s[i + 1] * eh * eps + s[i + 1] * math.sqrt(math.expm1(2 * h)) * noise(z)
        if prev is not None and step_order(order, i, n, lower_order_final) == 2:
            z_next = z_next - s[i + 1] * eh * (eps - prev[1]) * (h / (lam[i] - prev[0]))
        prev = (lam[i], eps)
        notify(callback, i, times[i], z, x0)
        z = z_next
    return z


@torch.no_grad()
def euler_maruyama(model: Denoiser, z: Tensor, ts: Tensor, *, generator: torch.Generator | None = None,
                   noise_sampler: NoiseSampler | None = None, callback: Callback | None = None) -> Tensor:
    """Euler-Maruyama on the reverse SDE dz = (-f z + g^2 score) dt + g dw, score = -(z - a x0_hat)/s^2."""
    process = model.process
    times = ts.tolist()
    a, s, _ = sde_coefficients(process, ts)
    f, g2 = process.sde_f(ts.double()).tolist(), process.sde_g2(ts.double()).tolist()
    noise = noise_sampler or default_noise(generator)
    for i in range(len(ts) - 1):
        x0 = model(z, times[i])
        dt = float(ts[i + 1] - ts[i])
        score = -(z - a[i] * x0) / s[i] ** 2
        notify(callback, i, times[i], z, x0)
        z = z + (-f[i] * z + g2[i] * score) * dt + math.sqrt(g2[i] * dt) * noise(z)
    return z
