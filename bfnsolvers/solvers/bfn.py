"""The original BFN sampler (Graves et al., Algorithms 3, 6, 9) on any grid."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .. import kernels

from ..denoiser import Denoiser
from ..rng import PerSample
from .common import Callback, NoiseSampler, default_noise, notify


@torch.no_grad()
def bfn_sampler(model: Denoiser, z: Tensor, ts: Tensor, *, draw: Literal["sample", "mode"] = "sample",
                generator: torch.Generator | None = None, noise_sampler: NoiseSampler | None = None,
                callback: Callback | None = None) -> Tensor:
    """For each step: draw x ~ p_O(. | theta(z), t_i), a sender sample with accuracy
    beta(t_{i+1}) - beta(t_i), and make the Bayesian update (BFN eqs. 49-50, 171-174).

    Continuous data: x = x_hat; discretised: a bin centre; discrete: a class. In
    linear-SDE terms this is first-order SDE-BFN-Solver++ with a sampled x0 (BFN-SDE Sec. 5).
    draw="mode" takes the most likely value instead of a draw (ChemBFN's sampler: the most likely
    token at each step); it changes the sampled distribution.

    Discrete data on the Triton backend (CUDA tensors, or BFNSOLVERS_KERNELS=triton) runs each step
    as one fused kernel, ``bfnsolvers.kernels.discrete_bfn_step`` (Gumbel-max class, sender sample, update;
    Philox noise seeded from ``generator``); the callback then gets x0 = None.
    """
    if draw not in ("sample", "mode"):
        raise ValueError(f"draw must be 'sample' or 'mode', got {draw!r}")
    process = model.process
    noise = noise_sampler or default_noise(generator)
    fused = (process.kind == "discrete" and noise_sampler is None and draw == "sample"
             and not isinstance(generator, PerSample) and kernels.resolve_backend(z) == "triton")
    for i in range(len(ts) - 1):
        dist = model.output(z, ts[i])
        if fused:
            notify(callback, i, float(ts[i]), z, None)
            alpha = float(process.beta(ts[i + 1]) - process.beta(ts[i]))
            z, _ = kernels.discrete_bfn_step(dist.logits, z, alpha, generator=generator)
            continue
        x0 = process.sample_to_x0(dist, generator) if draw == "sample" else process.to_x0(dist.mode)
        notify(callback, i, float(ts[i]), z, x0)
        z = process.bayes_step(z, x0, ts[i], ts[i + 1], noise(z))
    return z
