"""Discrete-data solvers that treat x0 = K e_hat - 1 as a polynomial in the natural time u, not in lambda.

Any accuracy schedule beta(t) is the beta_ref u^2 process in the natural time u = sqrt(beta(t) / beta_ref),
beta_ref = beta(1) (``DiscreteBFN.natural_time``; for Graves' beta_1 t^2, u = t and beta_ref = beta_1):
z = beta_ref u^2 x0 + sqrt(K beta_ref) u eps. In u the probability-flow ODE is dy/du = y / u + beta_ref u x0,
i.e. d(y/u)/du = beta_ref x0, and the reverse SDE is dy = x0 d(beta) + sqrt(K) dW_beta with
d beta = 2 beta_ref u du (bfn-math.md Sec. 4): both are exact integrals of x0 against 1 or 2 beta_ref u
in u. The network is called at the model's own time t = t(u) (the grid ts is in t). The published
solvers (BFN-SDE reference implementation) extrapolate x0 linearly in s = 1 - u; ``adams_t`` uses
Adams-Bashforth polynomials in u of order 1-3 and an optional Adams-Moulton corrector that reuses the
next step's network call (no extra NFE), as UniPC does for diffusion models. For beta_1 t^2 every
formula below is the published one in t. Any other constant beta_ref would give the same states: u scales
by a constant k and beta_ref by 1/k^2, and every update below is invariant under that.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ..denoiser import Denoiser
from ..processes import DiscreteBFN
from .common import Callback, NoiseSampler, default_noise, notify


def _check(model: Denoiser) -> DiscreteBFN:
    if model.process.kind != "discrete":
        raise ValueError(f"this solver is for discrete data (DiscreteBFN), got {model.process!r}")
    return model.process


def natural_grid(process: DiscreteBFN, ts: Tensor) -> list[float]:
    """u_i = sqrt(beta(t_i) / beta_ref) on the grid, as float64 Python numbers (u = t for beta_1 t^2; computed
    once per grid and schedule: ``BFNProcess.memo``; a fresh list per call)."""
    return list(process.remembered(("natural", tuple(ts.tolist())),
                                   lambda: tuple(process.natural_time(ts.double().cpu()).tolist())))


@torch.no_grad()
def bfn_solver2_s(model: Denoiser, z: Tensor, ts: Tensor, *, callback: Callback | None = None) -> Tensor:
    """ODE, multistep, in the natural time u (module docstring; u = t for beta_1 t^2):
    y' = (u'/u) y + beta_ref u' (u' - u) x0 - beta_ref u' (s' - s)^2 / 2 * D1, s = 1 - u,
    D1 = (x0 - x0_prev) / (s - s_prev); the first step is first order."""
    process = _check(model)
    beta_ref, u, t = process.beta_ref, natural_grid(process, ts), ts.tolist()
    prev = None
    for i in range(len(u) - 1):
        x0 = model(z, ts[i])
        u0, u1 = u[i], u[i + 1]
        z_next = (u1 / u0) * z + beta_ref * u1 * (u1 - u0) * x0
        if prev is not None:
            d1 = (x0 - prev) / (u[i - 1] - u0)          # d x0 / ds, s = 1 - u
            z_next = z_next - beta_ref * u1 * (u1 - u0) ** 2 / 2 * d1
        prev = x0
        notify(callback, i, t[i], z, x0)
        z = z_next
    return z


@torch.no_grad()
def sde_bfn_solver2_s(model: Denoiser, z: Tensor, ts: Tensor, *, generator: torch.Generator | None = None,
                      noise_sampler: NoiseSampler | None = None, callback: Callback | None = None) -> Tensor:
    """SDE, multistep, in the natural time u: y' = y + (beta' - beta) x0 + sqrt(K (beta' - beta)) noise
    + (1/3) beta_ref (s' - s)^2 (s + 2 s' - 3) D1, s = 1 - u, beta' - beta = beta_ref (u'^2 - u^2);
    the first step is first order."""
    process = _check(model)
    beta_ref, K, u, t = process.beta_ref, process.num_classes, natural_grid(process, ts), ts.tolist()
    noise = noise_sampler or default_noise(generator)
    prev = None
    for i in range(len(u) - 1):
        x0 = model(z, ts[i])
        u0, u1 = u[i], u[i + 1]
        db = beta_ref * (u1 ** 2 - u0 ** 2)
        z_next = z + db * x0
        if prev is not None:
            s0, s1 = 1 - u0, 1 - u1
            d1 = (x0 - prev) / (u[i - 1] - u0)
            z_next = z_next + beta_ref * (s1 - s0) ** 2 * (s0 + 2 * s1 - 3) / 3 * d1
        prev = x0
        notify(callback, i, t[i], z, x0)
        z = z_next + math.sqrt(K * db) * noise(z)
    return z


@torch.no_grad()
def bfn_solver2_midpoint(model: Denoiser, z: Tensor, ts: Tensor, *, callback: Callback | None = None) -> Tensor:
    """The published single-step ODE solver, two calls per step, in the natural time u: a first-order
    step to the midpoint u_m = (u + u')/2 (the network sees t(u_m)), then
    y' = (u'/u) y + beta_ref u' (u' - u) x0 + beta_ref u' (u' - u)^2 / 2 * (x0_m - x0) / (u_m - u)."""
    process = _check(model)
    beta_ref, u, t = process.beta_ref, natural_grid(process, ts), ts.tolist()
    for i in range(len(u) - 1):
        u0, u1 = u[i], u[i + 1]
        um = 0.5 * (u0 + u1)
        tm = process.t_of_natural_time(torch.tensor(um, dtype=torch.float64)).item()
        x0 = model(z, ts[i])
        x0_m = model((um / u0) * z + beta_ref * um * (um - u0) * x0, ts.new_tensor(tm))
        notify(callback, i, t[i], z, x0)
        z = (u1 / u0) * z + beta_ref * u1 * (u1 - u0) * (x0 + 0.5 * (u1 - u0) * (x0_m - x0) / (um - u0))
    return z


_GAUSS_X, _GAUSS_W = np.polynomial.legendre.leggauss(4)   # exact for polynomials of degree <= 7


def integral_weights(nodes: list[float], t0: float, t1: float, stochastic: bool) -> list[float]:
    """w_j = int_t0^t1 omega(tau) l_j(tau) dtau (``_integral_weights``; cached per node tuple, so a grid's
    weights are computed once and not twice per step)."""
    return list(_integral_weights(tuple(float(x) for x in nodes), float(t0), float(t1), bool(stochastic)))


@lru_cache(maxsize=4096)
def _integral_weights(nodes: tuple[float, ...], t0: float, t1: float, stochastic: bool) -> tuple[float, ...]:
    """w_j = int_t0^t1 omega(tau) l_j(tau) dtau for the Lagrange basis l_j on ``nodes`` (at most 4),
    omega = 2 tau (SDE: d beta = 2 beta_ref tau dtau) or 1 (ODE), so int omega x0 ~ sum_j w_j x0_j.
    The times here are natural times u (module docstring), in which beta = beta_ref u^2 for any schedule."""
    tau = 0.5 * (t1 - t0) * _GAUSS_X + 0.5 * (t1 + t0)
    omega = 2 * tau if stochastic else np.ones_like(tau)
    weights = []
    for j, tj in enumerate(nodes):
        basis = np.prod([(tau - tm) / (tj - tm) for m, tm in enumerate(nodes) if m != j], axis=0)
        weights.append(float(0.5 * (t1 - t0) * np.sum(_GAUSS_W * omega * basis)))
    return tuple(weights)


@torch.no_grad()
def adams_t(model: Denoiser, z: Tensor, ts: Tensor, *, order: int = 2, stochastic: bool = False,
            corrector: bool = False, lower_order_final: bool = False, generator: torch.Generator | None = None,
            noise_sampler: NoiseSampler | None = None, callback: Callback | None = None) -> Tensor:
    """Multistep solver for discrete data with x0 polynomial in the natural time u (order 1-3, warm-up
    with lower orders; u = t for beta_1 t^2, module docstring).

    ODE: y' = (u'/u) y + beta_ref u' int_u^u' P(tau) dtau; SDE: y' = y + beta_ref int_u^u' 2 tau P(tau) dtau
    + sqrt(K (beta' - beta)) noise, with P the polynomial in u through the last ``order`` predictions.
    Order 2 without the corrector is the published bfn_solver2_s / sde_bfn_solver2_s. ``corrector``: once x0 at t' is
    known, redo the step with P through it and the order - 1 previous predictions (Adams-Moulton;
    the same noise), and start the next step from the corrected state: one call per step, as before.
    """
    process = _check(model)
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    beta_ref, K, u, t = process.beta_ref, process.num_classes, natural_grid(process, ts), ts.tolist()
    noise = noise_sampler or default_noise(generator)
    n = len(u) - 1

    def step(z: Tensor, u0: float, u1: float, nodes: list[float], xs: list[Tensor], eps: Tensor | None) -> Tensor:
        """z + beta_ref sum_j w_j x_j + eps (SDE) or (u1/u0) z + u1 beta_ref sum_j w_j x_j (ODE), accumulated in
        place on fresh temporaries (the same ops in the same order as the out-of-place sum)."""
        weights = integral_weights(nodes, u0, u1, stochastic)
        integral = torch.mul(xs[0], weights[0])
        for w, x in zip(weights[1:], xs[1:]):
            integral.add_(torch.mul(x, w))
        integral.mul_(beta_ref)
        if stochastic:
            return integral.add_(z).add_(eps)
        return integral.mul_(u1).add_(torch.mul(z, u1 / u0))

    history: list[tuple[float, Tensor]] = []          # newest first, (u_i, x0_i)
    x0 = model(z, t[0]) if n > 0 else None
    for i in range(n):
        history = [(u[i], x0)] + history[:order - 1]
        k = min(order, n - i) if lower_order_final else order
        nodes, xs = [h[0] for h in history[:k]], [h[1] for h in history[:k]]
        u0, u1 = u[i], u[i + 1]
        eps = math.sqrt(K * beta_ref * (u1 ** 2 - u0 ** 2)) * noise(z) if stochastic else None
        notify(callback, i, t[i], z, x0)
        z_next = step(z, u0, u1, nodes, xs, eps)
        if i + 1 < n:
            x0 = model(z_next, t[i + 1])
            if corrector:
                z_next = step(z, u0, u1, [u1] + nodes[:max(k - 1, 1)], [x0] + xs[:max(k - 1, 1)], eps)
        z = z_next
    return z
