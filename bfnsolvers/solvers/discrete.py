"""Discrete-data solvers that treat x0 = K e_hat - 1 as a polynomial in t, not in lambda.

For discrete BFN, beta = beta_1 t^2, the probability-flow ODE is y' = y / t + beta_1 t x0, i.e.
d(y/t)/dt = beta_1 x0, and the reverse SDE is dy = x0 d(beta) + sqrt(K) dW_beta (bfn-math.md
Sec. 4): both are exact integrals of x0 against 1 or 2 beta_1 t in t. The published solvers
(BFN-SDE reference implementation) extrapolate x0 linearly in s = 1 - t; ``adams_t`` does the
same with Adams-Bashforth polynomials of order 1-3 and an optional Adams-Moulton corrector that
reuses the next step's network call (no extra NFE), as UniPC does for diffusion models.
"""
from __future__ import annotations

import math

import numpy as np
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


@torch.no_grad()
def bfn_solver2_midpoint(model: Denoiser, z: Tensor, ts: Tensor, *, callback: Callback | None = None) -> Tensor:
    """The published single-step ODE solver, two calls per step: a first-order step to the midpoint
    t_m = (t + t')/2, then y' = (t'/t) y + beta_1 t' (t' - t) x0 + beta_1 t' (t' - t)^2 / 2 * (x0_m - x0) / (t_m - t)."""
    beta_1, t = _check(model).beta_1, ts.tolist()
    for i in range(len(t) - 1):
        t0, t1 = t[i], t[i + 1]
        tm = 0.5 * (t0 + t1)
        x0 = model(z, ts[i])
        x0_m = model((tm / t0) * z + beta_1 * tm * (tm - t0) * x0, ts.new_tensor(tm))
        report(callback, i, t0, z, x0)
        z = (t1 / t0) * z + beta_1 * t1 * (t1 - t0) * (x0 + 0.5 * (t1 - t0) * (x0_m - x0) / (tm - t0))
    return z


_GAUSS_X, _GAUSS_W = np.polynomial.legendre.leggauss(4)   # exact for polynomials of degree <= 7


def integral_weights(nodes: list[float], t0: float, t1: float, stochastic: bool) -> list[float]:
    """w_j = int_t0^t1 omega(tau) l_j(tau) dtau for the Lagrange basis l_j on ``nodes`` (at most 4),
    omega = 2 tau (SDE: d beta = 2 beta_1 tau dtau) or 1 (ODE), so int omega x0 ~ sum_j w_j x0_j."""
    tau = 0.5 * (t1 - t0) * _GAUSS_X + 0.5 * (t1 + t0)
    omega = 2 * tau if stochastic else np.ones_like(tau)
    weights = []
    for j, tj in enumerate(nodes):
        basis = np.prod([(tau - tm) / (tj - tm) for m, tm in enumerate(nodes) if m != j], axis=0)
        weights.append(float(0.5 * (t1 - t0) * np.sum(_GAUSS_W * omega * basis)))
    return weights


@torch.no_grad()
def adams_t(model: Denoiser, z: Tensor, ts: Tensor, *, order: int = 2, stochastic: bool = False,
            corrector: bool = False, lower_order_final: bool = False, generator: torch.Generator | None = None,
            noise_sampler: NoiseSampler | None = None, callback: Callback | None = None) -> Tensor:
    """Multistep solver for discrete data with x0 polynomial in t (order 1-3, warm-up with lower orders).

    ODE: y' = (t'/t) y + beta_1 t' int_t^t' P(tau) dtau; SDE: y' = y + beta_1 int_t^t' 2 tau P(tau) dtau
    + sqrt(K (beta' - beta)) noise, with P the polynomial through the last ``order`` predictions.
    Order 2 without the corrector is the published bfn_solver2_s / sde_bfn_solver2_s. ``corrector``: once x0 at t' is
    known, redo the step with P through it and the order - 1 previous predictions (Adams-Moulton;
    the same noise), and start the next step from the corrected state: one call per step, as before.
    """
    process = _check(model)
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    beta_1, K, t = process.beta_1, process.num_classes, ts.tolist()
    noise = noise_sampler or default_noise(generator)
    n = len(t) - 1

    def step(z: Tensor, t0: float, t1: float, nodes: list[float], xs: list[Tensor], eps: Tensor | None) -> Tensor:
        integral = beta_1 * sum(w * x for w, x in zip(integral_weights(nodes, t0, t1, stochastic), xs))
        return z + integral + eps if stochastic else (t1 / t0) * z + t1 * integral

    history: list[tuple[float, Tensor]] = []          # newest first
    x0 = model(z, ts[0]) if n > 0 else None
    for i in range(n):
        history = [(t[i], x0)] + history[:order - 1]
        k = min(order, n - i) if lower_order_final else order
        nodes, xs = [h[0] for h in history[:k]], [h[1] for h in history[:k]]
        t0, t1 = t[i], t[i + 1]
        eps = math.sqrt(K * beta_1 * (t1 ** 2 - t0 ** 2)) * noise(z) if stochastic else None
        report(callback, i, t0, z, x0)
        z_next = step(z, t0, t1, nodes, xs, eps)
        if i + 1 < n:
            x0 = model(z_next, ts[i + 1])
            if corrector:
                z_next = step(z, t0, t1, [t1] + nodes[:max(k - 1, 1)], [x0] + xs[:max(k - 1, 1)], eps)
        z = z_next
    return z
