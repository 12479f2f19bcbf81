"""Fused per-step kernels for BFN samplers (Triton on CUDA, plain-torch reference elsewhere).

Public functions (see `bfnsolvers.kernels.dispatch` for backend selection and random numbers):

- `discrete_bfn_step(logits, y, alpha)` -> (y', theta'): original BFN sampler step.
- `discrete_solver_step(logits, y, c_y, c_x, c_p=, x0_prev=, c_n=, z=)` -> (y', x0, theta').
- `continuous_update(mu, eps_hat, gamma, rho, alpha)` -> mu': Bayesian update with eps -> x.
- `continuous_solver_step(mu, eps_hat, gamma, c_z, c_x, c_p=, x0_prev=, c_n=, z=)` -> (mu', x0).
- `discretised_output(mu_eps, ln_sigma_eps, mu, gamma, num_bins)` -> (mean, sample, mode).
- `discretised_gaussian(mu_x, sigma_x, num_bins, mean=, sample=, mode=)` -> (mean, sample, mode):
  the same from the Gaussian's parameters (what `DiscretisedGaussian` calls), no (..., K) tensor.

The samplers call ``discretised_gaussian`` (every solver on discretised data) and ``discrete_bfn_step`` (the
original sampler on discrete data). The other four are kept public as tested, benchmarked building blocks
(``benchmarks/kernels.py``, ``benchmarks/results/kernels_*.md``) for fusing the solvers' steps; no solver calls
them yet.

Every function takes optional pre-drawn noise (z, gumbel, u) so that both backends give
the same result; otherwise torch uses `generator` and Triton uses Philox(`seed`, `offset`).
`bfnsolvers.kernels.reference` holds the torch references (`*_ref`) used as ground truth.
"""

from .dispatch import (
    ENV_VAR,
    DiscreteSolverOut,
    continuous_solver_step,
    continuous_update,
    discrete_bfn_step,
    discrete_solver_step,
    discretised_gaussian,
    discretised_output,
    requested_backend,
    resolve_backend,
    triton_available,
)
from .reference import DiscretisedOut

__all__ = [
    "ENV_VAR",
    "DiscreteSolverOut",
    "DiscretisedOut",
    "continuous_solver_step",
    "continuous_update",
    "discrete_bfn_step",
    "discrete_solver_step",
    "discretised_gaussian",
    "discretised_output",
    "requested_backend",
    "resolve_backend",
    "triton_available",
]
