"""Public per-step functions: validate, pick a backend, run Triton kernel or torch reference.

Backend choice (first that applies):
  1. the ``backend=`` argument ("torch", "triton" or "auto"),
  2. env ``BFNSOLVERS_KERNELS`` ("torch", "triton", "auto"; unset = "auto"),
  3. "auto": Triton for CUDA tensors when triton is installed, torch otherwise.
"triton" on CPU tensors runs only under the Triton interpreter (TRITON_INTERPRET=1 set
before triton is first imported). float64 inputs always use torch (the kernels compute
in float32); so does K > 16384 for the row kernels. `discretised_gaussian` is what the discretised
output distribution (`bfnsolvers.distributions.DiscretisedGaussian`) calls for its mean, mode and
sample, so every solver and the original sampler take this choice on discretised data.

Random numbers: pass pre-drawn noise (``z``, ``gumbel``, ``u``) to get identical
results from both backends. Otherwise torch draws from ``generator`` (or the global
RNG), and Triton draws Philox noise from (``seed``, ``offset``): counter = offset + flat
element index, see `bfnsolvers.kernels.triton_kernels`. With ``seed=None`` a seed is drawn from
``generator``/the global torch RNG, so ``torch.manual_seed`` makes both reproducible.
The two backends' own draws differ in value, not in distribution.

Over 400 lines on purpose: six public functions, each mostly its argument checks and documented signature;
the one dispatch step they share is ``_triton_launcher``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from typing import NamedTuple, Optional

import torch

from . import reference as ref
from ._checks import (
    check_classes,
    check_gamma,
    check_like,
    check_num_bins,
    check_scalar,
    check_tensor,
    eps_scale,
    zero_prediction,
)
from .reference import DiscretisedOut

ENV_VAR = "BFNSOLVERS_KERNELS"
_BACKENDS = ("torch", "triton", "auto")


class DiscreteSolverOut(NamedTuple):
    """y' (next state), x0 = K softmax(logits) - 1, theta' = softmax(y') or None."""

    y: torch.Tensor
    x0: torch.Tensor
    theta: Optional[torch.Tensor]


# ----------------------------------------------------------------------------------------
# backend selection
# ----------------------------------------------------------------------------------------
def triton_available() -> bool:
    """True if the triton package can be imported (does not import it)."""
    return importlib.util.find_spec("triton") is not None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def requested_backend(backend: Optional[str] = None) -> str:
    """The requested backend: argument, else env BFNSOLVERS_KERNELS, else 'auto'."""
    choice = backend if backend is not None else os.environ.get(ENV_VAR, "auto")
    choice = (choice or "auto").strip().lower()
    if choice not in _BACKENDS:
        src = "backend" if backend is not None else ENV_VAR
        raise ValueError(f"{src} must be one of {_BACKENDS}, got {choice!r}")
    return choice


def resolve_backend(x: torch.Tensor, backend: Optional[str] = None, *, fits: bool = True) -> str:
    """'triton' or 'torch' for state tensor `x`; `fits` False forces torch (unsupported size)."""
    choice = requested_backend(backend)
    if choice == "torch":
        return "torch"
    supported = fits and x.dtype in (torch.float32, torch.float16, torch.bfloat16)
    if choice == "auto":
        return "triton" if supported and x.is_cuda and triton_available() else "torch"
    if not triton_available():
        raise RuntimeError("backend 'triton' requested but triton is not installed")
    if not x.is_cuda and not _interpreting():
        raise RuntimeError(
            "backend 'triton' on CPU tensors needs TRITON_INTERPRET=1 set before triton is imported"
        )
    if not supported:
        warnings.warn(f"triton kernels do not support this input ({x.dtype}); using torch", stacklevel=3)
        return "torch"
    return "triton"


def _triton_module():
    """The Triton kernel module (imported on first use)."""
    from . import triton_kernels

    return triton_kernels


def _on_device(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Launch Triton kernels on x's GPU (not the current one); no-op for CPU tensors."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _triton_launcher(x: torch.Tensor, backend: Optional[str], name: str, *, fits: bool = True):
    """The one dispatch step of every public function: if the backend resolves to Triton for ``x``, a callable
    that runs the Triton kernel ``name`` on x's device; else None (the caller then runs the torch reference)."""
    if resolve_backend(x, backend, fits=fits) != "triton":
        return None
    kernel = getattr(_triton_module(), name)

    def launch(*args):
        with _on_device(x):
            return kernel(*args)

    return launch


def _seed(seed: Optional[int], generator: Optional[torch.Generator]) -> int:
    """Philox key: `seed`, or one drawn from `generator` / the global torch RNG."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
        return seed
    device = generator.device if generator is not None else torch.device("cpu")
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device).item())


def _offset(offset: int) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be an int >= 0, got {offset!r}")
    return offset


def _contiguous(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if t is None else t.contiguous()


def _randn(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=ref.compute_dtype(x.dtype))


def _rand(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=ref.compute_dtype(x.dtype))


def _row_fits(K: int) -> bool:
    return K <= 16384


# ----------------------------------------------------------------------------------------
# 1. original BFN sampler step (discrete data)
# ----------------------------------------------------------------------------------------
def discrete_bfn_step(
    logits: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    *,
    z: Optional[torch.Tensor] = None,
    gumbel: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
    offset: int = 0,
    backend: Optional[str] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One original-BFN step on discrete data (K = last dim).

    k ~ softmax(logits) by Gumbel-max (k = argmax(logits + gumbel));
    y' = y + alpha (K e_k - 1) + sqrt(alpha K) z; theta' = softmax(y'). Returns (y', theta').
    Pass both `z` and `gumbel` (shape of y) or neither.
    """
    check_tensor("logits", logits)
    check_tensor("y", y)
    K = check_classes("logits", logits)
    check_like("y", y, "logits", logits)
    alpha = check_scalar("alpha", alpha, nonneg=True)
    check_like("z", z, "logits", logits)
    check_like("gumbel", gumbel, "logits", logits)
    if (z is None) != (gumbel is None):
        raise ValueError("z and gumbel must be passed together (or neither)")
    if y.numel() == 0:
        return torch.empty_like(y), torch.empty_like(y)
    launch = _triton_launcher(y, backend, "discrete_bfn_step", fits=_row_fits(K))
    if launch is not None:
        return launch(
            logits.contiguous(), y.contiguous(), alpha, _contiguous(z), _contiguous(gumbel),
            _seed(seed, generator) if z is None else 0, _offset(offset),
        )
    if z is None:
        z, gumbel = _randn(y, generator), ref.gumbel_from_uniform(_rand(y, generator))
    assert gumbel is not None
    return ref.discrete_bfn_step_ref(logits, y, alpha, z, gumbel)


# ----------------------------------------------------------------------------------------
# 2. BFN-Solver step (discrete data)
# ----------------------------------------------------------------------------------------
def discrete_solver_step(
    logits: torch.Tensor,
    y: torch.Tensor,
    c_y: float,
    c_x: float,
    *,
    c_p: float = 0.0,
    x0_prev: Optional[torch.Tensor] = None,
    c_n: float = 0.0,
    z: Optional[torch.Tensor] = None,
    return_theta: bool = False,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
    offset: int = 0,
    backend: Optional[str] = None,
) -> DiscreteSolverOut:
    """x0 = K softmax(logits) - 1; y' = c_y y + c_x x0 + c_p x0_prev + c_n z.

    x0_prev=None drops its term (c_p must then be 0); c_n == 0 drops the noise term, else
    `z` is used or drawn. Returns DiscreteSolverOut(y', x0, theta' = softmax(y') or None).
    """
    check_tensor("logits", logits)
    check_tensor("y", y)
    check_classes("logits", logits)
    check_like("y", y, "logits", logits)
    c_y, c_x = check_scalar("c_y", c_y), check_scalar("c_x", c_x)
    c_p, c_n = check_scalar("c_p", c_p), check_scalar("c_n", c_n)
    check_like("x0_prev", x0_prev, "logits", logits)
    check_like("z", z, "logits", logits)
    if x0_prev is None and c_p != 0.0:
        raise ValueError("x0_prev is None but c_p != 0")
    if y.numel() == 0:
        return DiscreteSolverOut(torch.empty_like(y), torch.empty_like(y), torch.empty_like(y) if return_theta else None)
    K = logits.shape[-1]
    launch = _triton_launcher(y, backend, "discrete_solver_step", fits=_row_fits(K))
    if launch is not None:
        noise = 0 if c_n == 0.0 else (1 if z is not None else 2)
        out = launch(
            logits.contiguous(), y.contiguous(), c_y, c_x, c_p, _contiguous(x0_prev), c_n,
            _contiguous(z) if noise == 1 else None, noise, return_theta,
            _seed(seed, generator) if noise == 2 else 0, _offset(offset),
        )
        return DiscreteSolverOut(*out)
    if c_n != 0.0 and z is None:
        z = _randn(y, generator)
    return DiscreteSolverOut(
        *ref.discrete_solver_step_ref(logits, y, c_y, c_x, c_p, x0_prev, c_n, z if c_n != 0.0 else None, return_theta)
    )


# ----------------------------------------------------------------------------------------
# 3. Bayesian update (continuous data)
# ----------------------------------------------------------------------------------------
def continuous_update(
    mu: torch.Tensor,
    eps_hat: torch.Tensor,
    gamma: float,
    rho: float,
    alpha: float,
    *,
    t: Optional[float] = None,
    z: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
    offset: int = 0,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """x_hat = clip(mu/gamma - sqrt((1-gamma)/gamma) eps_hat, -1, 1) (0 if gamma == 0 or
    t < 1e-6); y = x_hat + z/sqrt(alpha); returns mu' = (rho mu + alpha y) / (rho + alpha)."""
    check_tensor("mu", mu)
    check_like("eps_hat", eps_hat, "mu", mu)
    gamma = check_gamma(gamma)
    rho, alpha = check_scalar("rho", rho, positive=True), check_scalar("alpha", alpha, positive=True)
    check_like("z", z, "mu", mu)
    zero = zero_prediction(gamma, None if t is None else check_scalar("t", t))
    if mu.numel() == 0:
        return torch.empty_like(mu)
    launch = _triton_launcher(mu, backend, "continuous_update")
    if launch is not None:
        return launch(
            mu.contiguous(), eps_hat.contiguous(), gamma, eps_scale(gamma), rho, alpha, _contiguous(z), zero,
            _seed(seed, generator) if z is None else 0, _offset(offset),
        )
    if z is None:
        z = _randn(mu, generator)
    return ref.continuous_update_ref(mu, eps_hat, gamma, rho, alpha, z, zero)


# ----------------------------------------------------------------------------------------
# 4. data-prediction solver step (continuous data)
# ----------------------------------------------------------------------------------------
def continuous_solver_step(
    mu: torch.Tensor,
    eps_hat: torch.Tensor,
    gamma: float,
    c_z: float,
    c_x: float,
    *,
    c_p: float = 0.0,
    x0_prev: Optional[torch.Tensor] = None,
    c_n: float = 0.0,
    z: Optional[torch.Tensor] = None,
    lo: float = -1.0,
    hi: float = 1.0,
    t: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
    offset: int = 0,
    backend: Optional[str] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x0 = clip(mu/gamma - sqrt((1-gamma)/gamma) eps_hat, lo, hi) (0 if gamma == 0 or
    t < 1e-6); mu' = c_z mu + c_x x0 + c_p x0_prev + c_n z. Returns (mu', x0)."""
    check_tensor("mu", mu)
    check_like("eps_hat", eps_hat, "mu", mu)
    gamma = check_gamma(gamma)
    c_z, c_x = check_scalar("c_z", c_z), check_scalar("c_x", c_x)
    c_p, c_n = check_scalar("c_p", c_p), check_scalar("c_n", c_n)
    lo, hi = float(lo), float(hi)
    if not lo <= hi:
        raise ValueError(f"lo must be <= hi, got lo={lo}, hi={hi}")
    check_like("x0_prev", x0_prev, "mu", mu)
    check_like("z", z, "mu", mu)
    if x0_prev is None and c_p != 0.0:
        raise ValueError("x0_prev is None but c_p != 0")
    zero = zero_prediction(gamma, None if t is None else check_scalar("t", t))
    if mu.numel() == 0:
        return torch.empty_like(mu), torch.empty_like(mu)
    launch = _triton_launcher(mu, backend, "continuous_solver_step")
    if launch is not None:
        noise = 0 if c_n == 0.0 else (1 if z is not None else 2)
        return launch(
            mu.contiguous(), eps_hat.contiguous(), gamma, eps_scale(gamma), lo, hi, c_z, c_x, c_p,
            _contiguous(x0_prev), c_n, _contiguous(z) if noise == 1 else None, noise, zero,
            _seed(seed, generator) if noise == 2 else 0, _offset(offset),
        )
    if c_n != 0.0 and z is None:
        z = _randn(mu, generator)
    return ref.continuous_solver_step_ref(
        mu, eps_hat, gamma, c_z, c_x, c_p, x0_prev, c_n, z if c_n != 0.0 else None, lo, hi, zero
    )


# ----------------------------------------------------------------------------------------
# 5. discretised output distribution
# ----------------------------------------------------------------------------------------
def discretised_output(
    mu_eps: torch.Tensor,
    ln_sigma_eps: torch.Tensor,
    mu: torch.Tensor,
    gamma: float,
    num_bins: int,
    *,
    sample: bool = False,
    mode: bool = False,
    u: Optional[torch.Tensor] = None,
    t: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
    offset: int = 0,
    backend: Optional[str] = None,
) -> DiscretisedOut:
    """Discretised output distribution over K = num_bins bins on [-1, 1], per element.

    mu_x = mu/gamma - sqrt((1-gamma)/gamma) mu_eps, sigma_x = clamp(sqrt((1-gamma)/gamma)
    exp(ln_sigma_eps), 1e-3, 10) (mu_x = 0, sigma_x = 1 if gamma == 0 or t < 1e-6).
    Returns DiscretisedOut(mean = sum_k p_k k_c, sample (if `sample` or `u` given: the bin
    centre whose CDF interval contains u), mode (if `mode`)), never materialising (..., K).
    """
    check_tensor("mu", mu)
    check_like("mu_eps", mu_eps, "mu", mu)
    check_like("ln_sigma_eps", ln_sigma_eps, "mu", mu)
    check_like("u", u, "mu", mu)
    gamma = check_gamma(gamma)
    K = check_num_bins(num_bins)
    zero = zero_prediction(gamma, None if t is None else check_scalar("t", t))
    want_sample = sample or u is not None
    if mu.numel() == 0:
        e = torch.empty_like(mu)
        return DiscretisedOut(e, e.clone() if want_sample else None, e.clone() if mode else None)
    launch = _triton_launcher(mu, backend, "discretised_output")
    if launch is not None:
        out = launch(
            mu_eps.contiguous(), ln_sigma_eps.contiguous(), mu.contiguous(), gamma, eps_scale(gamma), K,
            _contiguous(u), want_sample, mode, zero,
            _seed(seed, generator) if want_sample and u is None else 0, _offset(offset),
        )
        return DiscretisedOut(*out)
    if want_sample and u is None:
        u = _rand(mu, generator)
    return ref.discretised_output_chunked(mu_eps, ln_sigma_eps, mu, gamma, K, u, mode, zero)


# ----------------------------------------------------------------------------------------
# 6. discretised Gaussian from its parameters (the output distribution's mean / sample / mode)
# ----------------------------------------------------------------------------------------
def discretised_gaussian(
    mu_x: torch.Tensor,
    sigma_x: torch.Tensor,
    num_bins: int,
    *,
    mean: bool = True,
    sample: bool = False,
    mode: bool = False,
    u: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
    offset: int = 0,
    backend: Optional[str] = None,
) -> DiscretisedOut:
    """N(mu_x, sigma_x^2) discretised onto K bins of [-1, 1], the end bins absorbing the tails
    (BFN eq. 108), without the (..., K) tensor. sigma_x must be > 0 (the process clamps it).

    mean = sum_k p_k k_c = -(1/K) sum_{j=1}^{K-1} erf((e_j - mu_x) / (sqrt2 sigma_x)), e_j = -1 + 2j/K;
    sample (if `sample` or `u` given) = centre of bin #{j: F(e_j) <= u}, u ~ U[0, 1) (inverse CDF);
    mode = centre of argmax_k p_k. Fields not asked for are None. Torch draws u from `generator`
    as ``torch.rand(mu_x.shape)`` (one uniform per element); Triton from Philox(`seed`, `offset`).
    The mean is differentiable in mu_x and sigma_x (torch path when a gradient is needed).
    """
    check_tensor("mu_x", mu_x)
    check_like("sigma_x", sigma_x, "mu_x", mu_x)
    check_like("u", u, "mu_x", mu_x)
    K = check_num_bins(num_bins)
    want_sample = sample or u is not None
    if mu_x.numel() == 0:
        e = torch.empty_like(mu_x)
        return DiscretisedOut(e if mean else None, e.clone() if want_sample else None, e.clone() if mode else None)
    # the Triton kernel has no backward: a mean that needs a gradient (training) takes the torch path
    needs_grad = mean and torch.is_grad_enabled() and (mu_x.requires_grad or sigma_x.requires_grad)
    launch = None if needs_grad else _triton_launcher(mu_x, backend, "discretised_gaussian")
    if launch is not None:
        out = launch(
            mu_x.contiguous(), sigma_x.contiguous(), K, _contiguous(u), mean, want_sample, mode,
            _seed(seed, generator) if want_sample and u is None else 0, _offset(offset),
        )
        return DiscretisedOut(*out)
    if want_sample and u is None:
        u = _rand(mu_x, generator)
    return ref.discretised_gaussian_chunked(mu_x, sigma_x, K, u, mean, mode)
