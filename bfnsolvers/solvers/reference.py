"""Reference solver: the probability-flow ODE integrated by torchdiffeq (adaptive dopri5, float64)."""
from __future__ import annotations

import torch
from torch import Tensor
from torchdiffeq import odeint

from ..denoiser import Denoiser
from .common import Callback, notify


@torch.no_grad()
def reference_ode(model: Denoiser, z: Tensor, ts: Tensor, *, rtol: float = 1e-8, atol: float = 1e-8,
                  method: str = "dopri5", callback: Callback | None = None) -> Tensor:
    """Integrate dz/dt = -f(t) z - (g(t)^2 / 2)(z - a(t) x0_hat(z, t)) / s(t)^2 from ts[0] to ts[-1]
    in float64 with an adaptive solver; ts inside the interval are output points only
    (the callback sees the state there, with x0 = None).

    The NFE it used is ``model.nfe`` (counted by the Denoiser).
    """
    process = model.process
    dtype = z.dtype

    def velocity(t: Tensor, y: Tensor) -> Tensor:
        x0 = model(y, t)
        a, s2 = process.a(t), process.s(t) ** 2
        return -process.sde_f(t) * y - 0.5 * process.sde_g2(t) * (y - a * x0) / s2

    ts = ts.double().to(z.device)
    # step_t makes the adaptive steps end exactly at the last time instead of overshooting past t = 1
    options = {"step_t": ts[-1:]} if method in ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2") else None
    path = odeint(velocity, z.double(), ts, rtol=rtol, atol=atol, method=method, options=options)
    for i in range(len(ts)):
        notify(callback, i, float(ts[i]), path[i].to(dtype), None)
    return path[-1].to(dtype)
