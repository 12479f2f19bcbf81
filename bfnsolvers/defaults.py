"""The measured defaults of ``sample`` per data type: one table (``DEFAULTS``) and the rules that read it.

``sample(model, process)`` with solver, schedule, t_start or final left out takes them from here
(``resolve_defaults``); docs/defaults.md has the measurements behind each choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from .processes import BFNProcess

__all__ = ["DEFAULTS", "DEFAULT_SPAN", "DEFAULT_START", "FINALS", "KindDefaults", "PUBLISHED_ETA", "READOUTS", "data_kind",
           "default_final", "default_lower_order_final",
           "default_schedule", "default_solver", "default_t_start", "resolve_defaults"]

Final = Literal["denoise", "state", "drop"]
Readout = Literal["mean", "mode", "sample"]
#: The final steps ``sample`` takes: "denoise" (a call at t = 1), "state" (read the state), "drop" (the readout
#: at the last-but-one time); and the readouts of the final output distribution.
FINALS: tuple[str, ...] = ("denoise", "state", "drop")
READOUTS: tuple[str, ...] = ("mean", "mode", "sample")

#: Start times of the published BFN-Solvers (CIFAR-10 and text8 configs): eta.
PUBLISHED_ETA = {"continuous": 1e-2, "discrete": 1e-3}

#: Default log-SNR span of the grid for continuous data: it starts where
#: lambda = lambda(1) - DEFAULT_SPAN (t = 0.0011 for sigma_1 = 1e-3). Chosen among 8-11 on the GMM
#: oracle (benchmarks/beyond/: 8 and 9 equal within noise) and the digits model (NFE 10 digits FD,
#: ODE/SDE: span 8 163/129, span 9 117/108, span 10 115/119): see benchmarks/results/beyond.md.
DEFAULT_SPAN = 9.0

#: The start state ``sample`` draws when ``start`` is left out: "zero" (z ~ N(0, s^2 I)) or "prior-mean" (one
#: call for E[x0], z ~ N(a E[x0], s^2 I); KL to the true marginal O(r^4) instead of O(r^2), r = a/s; see
#: ``sampling.prior_mean`` and docs/defaults.md). Only fixed-step solvers on a named grid from t_start > 0 without
#: z_start use it (a list of times keeps the calls it names).
DEFAULT_START = "zero"


@dataclass(frozen=True)
class KindDefaults:
    """The defaults of one data type. t_start: "span" (where lambda = lambda(1) - DEFAULT_SPAN) or "eta" (the
    published eta in the natural time). final: for every solver but the original sampler and the reference ODE,
    which end with a call at t = 1 ("denoise")."""

    solver: str
    schedule: str
    t_start: Literal["span", "eta"]
    final: Final
    #: The ODE solver of the calibration pilot and of ``bfnsolvers --schedule calibrated`` (an ODE, as advised).
    ode_solver: str
    why: str
    #: t_start = "eta": the start time in the natural time u = sqrt(beta / beta(1)) (= t for beta_1 t^2).
    eta: float | None = None


_CONTINUOUS = KindDefaults(
    "bfn-unipc3", "logsnr", "span", "drop", "bfn-unipc3",
    "the best measured solver at NFE 10 on the shipped models (benchmarks/results/beyond-models.md): the 2M "
    "predictor with a UniPC-style corrector on the log-SNR grid; the start where lambda = lambda(1) - DEFAULT_SPAN "
    "(the published eta = 0.01 ignores a(eta) E[x] at a half log-SNR of -0.95 for sigma_1 = 1e-3 and makes the "
    "ODE solvers plateau); the last step dropped, x0_hat read at the last-but-one grid time")

#: Per data type (``process.kind``): default solver, grid, start rule and final step, with the reason.
DEFAULTS: dict[str, KindDefaults] = {
    "continuous": _CONTINUOUS,
    "discretised": _CONTINUOUS,
    "discrete": KindDefaults(
        "sde-bfn-unipc3-t", "uniform", "eta", "denoise", "bfn-unipc3-t",
        "chosen by rule on the choosing half of the random Markov-chain family (benchmarks/families_markov.py: the "
        "lowest mean over NFE 4-20 of the log of the median over members of the geometric mean of the |entropy gap| "
        "and pair-TV floor ratios, among 27 configurations): the SDE solver polynomial in the natural time u with a "
        "corrector on the uniform grid (e_hat is smooth in u, not in lambda), from eta = 0.03 in u (0.001, 0.01 and "
        "0.1 scored worse: the first steps at tiny u are wasted, at 0.1 the dropped correlations cost), zero start "
        "(the prior-mean start costs a call for a mean that is a small part of the start's error), its last call "
        "at t = 1 (\"denoise\", not \"drop\"), full order to the end; 0.786 vs 0.980 with \"drop\", 1.152 for the "
        "previous default (eta = 0.001, \"drop\")", eta=0.03),
}


def data_kind(process: BFNProcess) -> str:
    """"continuous", "discretised" or "discrete" (``process.kind``)."""
    return process.kind


def default_solver(process: BFNProcess) -> str:
    """The best measured solver for the data type (``DEFAULTS``)."""
    return DEFAULTS[process.kind].solver


def default_schedule(process: BFNProcess, solver: str) -> str:
    """Uniform in t for the original sampler; otherwise the data type's grid (``DEFAULTS``)."""
    return "uniform" if solver == "bfn" else DEFAULTS[process.kind].schedule


def default_t_start(process: BFNProcess, solver: str) -> float:
    """The original sampler starts at the prior (t = 0); otherwise the data type's rule (``DEFAULTS``)."""
    if solver == "bfn":
        return 0.0
    if DEFAULTS[process.kind].t_start == "eta":
        return float(process.t_of_natural_time(torch.tensor(DEFAULTS[process.kind].eta, dtype=torch.float64)))
    return float(process.t_of_lam(process.lam(1.0) - DEFAULT_SPAN))


def default_final(solver: str, process: BFNProcess | None = None) -> str:
    """The original sampler (and the reference ODE) end with a call at t = 1; the others with the data type's
    final step (``DEFAULTS``: "drop", x0_hat at the last-but-one grid time, for continuous and discretised data;
    "denoise", a call at t = 1, for discrete data)."""
    if solver in ("bfn", "reference"):
        return "denoise"
    return DEFAULTS[process.kind].final if process is not None else "drop"


def default_lower_order_final(kind: str, steps: int) -> bool:
    """DPM-Solver's rule for continuous data: lower orders at the final steps below 10 steps. Not for
    discrete data: there it raises the Markov oracle's error at NFE 4-6 by 1.4-1.6x (bfn-unipc3-t), and the
    Markov family's rule score (choosing half, benchmarks/results/families-markov: mean log over NFE 4-20 of the
    median floor ratio) from 1.152 to 1.243 (sde-bfn-unipc3-t) and from 1.245 to 1.281 (bfn-unipc3-t)."""
    return steps < 10 and kind != "discrete"


def resolve_defaults(process: BFNProcess, solver: str | None, schedule, t_start: float | None,
                     final: Final | None) -> tuple[str, str | Sequence[float] | Tensor, float, Final]:
    """(solver, schedule, t_start, final) with every None replaced by the measured default for the data type."""
    solver = default_solver(process) if solver is None else solver
    return (solver, default_schedule(process, solver) if schedule is None else schedule,
            default_t_start(process, solver) if t_start is None else float(t_start),
            default_final(solver, process) if final is None else final)
