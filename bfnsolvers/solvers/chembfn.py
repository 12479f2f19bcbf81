"""ChemBFN's "ODE:T" sampler (Tao et al., ``bayesianflow_for_chem``), ported from the equations in
docs/chembfn-facts.md (Sec. 6.2) as a solver of ours: any grid, model, guidance and class mask.

Each step draws a fresh flow sample at the next time with the one-hot data replaced by the predicted
distribution p and the flow variance multiplied by T:

    p = p_O(. | softmax(z_i), t_i),    z_{i+1} = beta(t_{i+1}) (K p - 1) + sqrt(K beta(t_{i+1}) T) eps.

The previous state enters only through p. T -> 0 is a deterministic map; T = 1 is the flow's own
variance. On the grid t_i = i / n from t = 0 with the final call at t = 1 (``schedule=torch.linspace(0,
1, n + 1)``, ``final="denoise"``, ``readout_as="mode"``) it is ChemBFN's ``ode_sample`` step for step.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..denoiser import Denoiser
from .common import Callback, NoiseSampler, default_noise, notify


@torch.no_grad()
def chembfn_ode(model: Denoiser, z: Tensor, ts: Tensor, *, ode_temperature: float = 0.5,
                renormalise_mask: bool = False, generator: torch.Generator | None = None,
                noise_sampler: NoiseSampler | None = None, callback: Callback | None = None) -> Tensor:
    """z' = beta(t') (K p - 1) + sqrt(K beta(t') T) eps with p the output distribution at (z, t), T =
    ``ode_temperature`` (ChemBFN's default 0.5; ``sample``'s own ``temperature`` is the logit temperature,
    a different thing). One noise draw per step, after the network call (ChemBFN's RNG order).

    Class mask (``sample(class_mask=...)``): with renormalise_mask=False (ChemBFN's token mask) the
    disallowed probabilities are set to 0 and p is not renormalised, so K p - 1 loses their mass; with
    True the exact restriction p(k | k allowed) is used. The final readout is the same either way.
    """
    process = model.process
    if process.kind != "discrete":
        raise ValueError(f"chembfn-ode is for discrete data (DiscreteBFN), got {process!r}")
    if (not isinstance(ode_temperature, (int, float)) or isinstance(ode_temperature, bool)
            or not 0 <= ode_temperature < float("inf")):
        raise ValueError(f"ode_temperature must be a finite number >= 0, got {ode_temperature!r}")
    if not isinstance(renormalise_mask, bool):
        raise ValueError(f"renormalise_mask must be a bool, got {renormalise_mask!r}")
    K = process.num_classes
    noise = noise_sampler or default_noise(generator)
    betas = process.beta(ts.double().cpu()).tolist()
    mask = model.class_mask
    for i in range(len(ts) - 1):
        keep = mask is not None and not renormalise_mask
        p = model.output(z, ts[i], apply_mask=not keep).probs
        if keep:
            p = p * mask.to(p.device, p.dtype)
        x0 = K * p - 1
        notify(callback, i, float(ts[i]), z, x0)
        b = betas[i + 1]
        z = b * x0 + math.sqrt(K * b * ode_temperature) * noise(z)
    return z
