"""The measured defaults of ``sample`` per data type: one table (``DEFAULTS``) and the rules that read it.

``sample(model, process)`` with solver, schedule, t_start or final left out takes them from here
(``resolve_defaults``); docs/defaults.md has the measurements behind each choice.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, NamedTuple, Sequence

import torch
from torch import Tensor

from .processes import BFNProcess

__all__ = ["CONTINUOUS_START_RULE", "DISCRETE_RULE", "DEFAULTS", "DEFAULT_NFE", "DEFAULT_SPAN", "DEFAULT_START", "FINALS",
           "MIN_SPAN", "START_NOISE_BAND", "DiscreteRow", "KindDefaults", "PUBLISHED_ETA", "READOUTS", "data_kind",
           "default_continuous_start", "default_discrete_eta", "default_final", "default_lower_order_final",
           "default_start", "discrete_row", "rule_row", "start_row", "default_schedule", "default_solver",
           "default_t_start", "resolve_defaults"]

Final = Literal["denoise", "state", "drop"]
Readout = Literal["mean", "mode", "sample"]
#: The final steps ``sample`` takes: "denoise" (a call at t = 1), "state" (read the state), "drop" (the readout
#: at the last-but-one time); and the readouts of the final output distribution.
FINALS: tuple[str, ...] = ("denoise", "state", "drop")
READOUTS: tuple[str, ...] = ("mean", "mode", "sample")

#: The NFE the rules read when nfe is None (``sample``'s default).
DEFAULT_NFE = 10

#: Start times of the published BFN-Solvers (CIFAR-10 and text8 configs): eta.
PUBLISHED_ETA = {"continuous": 1e-2, "discrete": 1e-3}

#: Log-SNR span of the default grid for discretised data (and of the joint sampler's continuous parts): it starts
#: where lambda = lambda(1) - DEFAULT_SPAN (t = 0.0011 for sigma_1 = 1e-3). Chosen among 8-11 on the GMM
#: oracle (benchmarks/beyond/: 8 and 9 equal within noise) and the digits model (NFE 10 digits FD,
#: ODE/SDE: span 8 163/129, span 9 117/108, span 10 115/119): see benchmarks/results/beyond.md. Continuous data
#: use ``CONTINUOUS_START_RULE`` instead (measured on the random mixture family).
DEFAULT_SPAN = 9.0

#: The start state ``sample`` draws when ``start`` is left out, for discrete and discretised data: "zero"
#: (z ~ N(0, s^2 I)) or "prior-mean" (one call for E[x0], z ~ N(a E[x0], s^2 I); KL to the true marginal O(r^4)
#: instead of O(r^2), r = a/s; see ``sampling.prior_mean`` and docs/defaults.md). Only fixed-step solvers on a named
#: grid from t_start > 0 without z_start use it (a list of times keeps the calls it names). Continuous data:
#: ``CONTINUOUS_START_RULE``.
DEFAULT_START = "zero"

#: The start of continuous data by NFE: rows (smallest NFE, start state, lambda(t_start)). lambda is absolute, not a
#: span below lambda(1): the start's divergence from the true marginal depends on r = e^lambda alone (KL ~
#: r^2 |E x0|^2 / 2 for the zero start), while a span of 9 starts at r = 1.2 for sigma_1 = 1e-4 and r = 0.012 for
#: 1e-2. Chosen on the choosing half of the random mixture family (20 members, 2 sample seeds; score = geometric
#: mean of the sliced-W2 and energy-distance floor ratios; benchmarks/results/families/choose.md) among lambda in
#: {-2, -3, -4, -5, -6, -8} (and 0, -1 at NFE 4-10) x {zero, prior-mean} at NFE 4-100 by the rule: the
#: smallest median score; candidates within 3% of it (the seed-to-seed noise of the median) tie, and the earliest
#: start among them wins (the least start error: the headroom for data with a larger |E x0|), then the zero start.
#: Median scores of the picks: 4.58, 2.94, 2.14, 1.56, 1.12, 1.00, 0.99, 0.94, 0.93 (span 9, zero start: 5.69,
#: 2.91, 2.24, 1.56, 1.33, 1.28, 1.26, 1.25, 1.25: its start error stops it above the floor). Few calls favour a late
#: start (the steps go where x0_hat moves), many an early one. The prior-mean start is never picked: it spends a
#: call, which costs more than its start error at NFE <= 10, and at NFE >= 15 the start is early enough that the
#: mean it adds is below the noise (NFE 20, lambda = -8: 0.997 vs 0.992). One exception to the family's pick: at
#: NFE 4 it chose lambda = -1 (4.58 vs 5.26 for -2), but on the shipped digits model lambda = -1 reads a digits FD of
#: 253 vs 157 for -2 (146 from the old span-9 start; benchmarks/results/families/digits.md), so NFE 4 keeps -2.
CONTINUOUS_START_RULE: tuple[tuple[int, str, float], ...] = (
    (1, "zero", -2.0), (8, "zero", -3.0), (15, "zero", -6.0), (20, "zero", -8.0))

#: The tie band of the start rules: candidates whose median score is within this fraction of the best tie, and the
#: earliest start among them wins (continuous: the seed-to-seed noise of the median on the mixture family).
START_NOISE_BAND = 0.03


class DiscreteRow(NamedTuple):
    """One row of ``DISCRETE_RULE``: from ``nfe`` calls on, ``solver`` on the uniform grid from ``eta`` in the natural
    time u = sqrt(beta / beta(1)), ending with ``final``. The original sampler ("bfn") starts at the prior (t = 0);
    on its rows eta is the start of a solver named explicitly."""

    nfe: int
    solver: str
    final: str
    eta: float


#: The defaults of discrete data by NFE (one table; ``discrete_row`` reads it): rows (smallest NFE, solver, final
#: step, start eta in u), all from the zero start (``DEFAULT_START``) on the uniform grid. NFE 1-14: one
#: configuration chosen on the choosing half of the random Markov-chain family (``DEFAULTS['discrete'].why``), its
#: start by NFE from the same family (NFE 50: 0.01, 100: 0.001: a start error does not fall with the steps, so it
#: moves earlier as they add up; benchmarks/results/families-markov/report.md, "The start at many calls").
#: NFE 15, 20, 50, 100: checked one NFE at a time on the same 10 members (2 sets of 500 sequences) against the
#: published solvers on their grids and 8 hybrids (``benchmarks/families_markov.py --stage high``): a rival would
#: replace this configuration only if its paired mean log score ratio over the members were below -z standard
#: errors (z: the one-sided 2.5% quantile, Bonferroni-corrected for ~10 rivals: 2.6-2.8); none is (the closest:
#: sde-bfn-solver2-s from eta 0.03 with the final call at NFE 20, -0.15 +- 0.07). The rule's first version (the
#: smallest median, 3% ties) picked four other rows that lost on the held-out half (median 1.66 vs 1.27 at NFE 20,
#: 2.05 vs 1.16 at 50): the score moves 11-24% between a cell's two sample sets, as much as the candidates differ.
DISCRETE_RULE: tuple[DiscreteRow, ...] = (
    DiscreteRow(1, "sde-bfn-unipc3-t", "denoise", 0.03),
    DiscreteRow(50, "sde-bfn-unipc3-t", "denoise", 0.01),
    DiscreteRow(100, "sde-bfn-unipc3-t", "denoise", 0.001))

#: The least log-SNR span the start rule leaves below lambda(1) (a process with sigma_1 near 1 has a small lambda(1)).
MIN_SPAN = 4.0


@dataclass(frozen=True)
class KindDefaults:
    """The defaults of one data type. t_start: "rule" (``default_continuous_start``: by NFE), "span" (where
    lambda = lambda(1) - DEFAULT_SPAN) or "eta" (by NFE in the natural time, ``default_discrete_eta``). final: for every solver but the
    original sampler and the reference ODE, which end with a call at t = 1 ("denoise")."""

    solver: str
    schedule: str
    t_start: Literal["rule", "span", "eta"]
    final: Final
    #: The ODE solver of the calibration pilot and of ``bfnsolvers --schedule calibrated`` (an ODE, as advised).
    ode_solver: str
    why: str


_CONTINUOUS = KindDefaults(
    "bfn-unipc3", "logsnr", "rule", "drop", "bfn-unipc3",
    "the best measured solver at NFE 10 on the shipped models (benchmarks/results/beyond-models.md) and on the "
    "choosing half of the random mixture family (benchmarks/results/families/choose.md): the 2M predictor with a "
    "UniPC-style corrector on the log-SNR grid; the start time and state by NFE (CONTINUOUS_START_RULE: the published "
    "eta = 0.01 ignores a(eta) E[x] and makes the ODE solvers plateau; a fixed span below lambda(1) starts at r = 1.2 "
    "for sigma_1 = 1e-4); the last step dropped, x0_hat read at the last-but-one grid time")
_DISCRETISED = replace(
    _CONTINUOUS, t_start="span",
    why="as for continuous data, from lambda(1) - DEFAULT_SPAN with the zero start (chosen on the digits model; the "
        "mixture family that chose CONTINUOUS_START_RULE is not discretised)")

#: Per data type (``process.kind``): default solver, grid, start rule and final step, with the reason.
DEFAULTS: dict[str, KindDefaults] = {
    "continuous": _CONTINUOUS,
    "discretised": _DISCRETISED,
    "discrete": KindDefaults(       # solver and final: the first row of DISCRETE_RULE (by NFE: discrete_row)
        DISCRETE_RULE[0].solver, "uniform", "eta", DISCRETE_RULE[0].final, "bfn-unipc3-t",
        "chosen by rule on the choosing half of the random Markov-chain family (benchmarks/families_markov.py: the "
        "lowest mean over NFE 4-20 of the log of the median over members of the geometric mean of the |entropy gap| "
        "and pair-TV floor ratios, among 27 configurations): the SDE solver polynomial in the natural time u with a "
        "corrector on the uniform grid (e_hat is smooth in u, not in lambda), from eta = 0.03 in u (0.001, 0.01 and "
        "0.1 scored worse: the first steps at tiny u are wasted, at 0.1 the dropped correlations cost), zero start "
        "(the prior-mean start costs a call for a mean that is a small part of the start's error), its last call "
        "at t = 1 (\"denoise\", not \"drop\"), full order to the end; 0.786 vs 0.980 with \"drop\", 1.152 for the "
        "previous default (eta = 0.001, \"drop\"); from NFE 15 on checked one NFE at a time against the published "
        "solvers (DISCRETE_RULE)"),
}


def data_kind(process: BFNProcess) -> str:
    """"continuous", "discretised" or "discrete" (``process.kind``)."""
    return process.kind


def rule_row(rule: Sequence[tuple], nfe: int | None) -> tuple:
    """The row of a table by NFE (rows ascending in their first entry, the smallest NFE they hold for) at ``nfe``
    calls (None: DEFAULT_NFE): the last row whose NFE is at most nfe (the first row below it)."""
    nfe = DEFAULT_NFE if nfe is None else nfe
    return ([r for r in rule if r[0] <= nfe] or rule[:1])[-1]


def discrete_row(nfe: int | None) -> DiscreteRow:
    """The discrete defaults at ``nfe`` calls (None: DEFAULT_NFE): the row of ``DISCRETE_RULE``."""
    return rule_row(DISCRETE_RULE, nfe)


def default_solver(process: BFNProcess, nfe: int | None = None) -> str:
    """The best measured solver for the data type (``DEFAULTS``; discrete data: by NFE, ``DISCRETE_RULE``)."""
    return discrete_row(nfe).solver if process.kind == "discrete" else DEFAULTS[process.kind].solver


def default_schedule(process: BFNProcess, solver: str) -> str:
    """Uniform in t for the original sampler; otherwise the data type's grid (``DEFAULTS``)."""
    return "uniform" if solver == "bfn" else DEFAULTS[process.kind].schedule


def start_row(kind: str, nfe: int | None) -> tuple[str, float]:
    """(start state, value) at ``nfe`` calls (None: DEFAULT_NFE): lambda(t_start) of ``CONTINUOUS_START_RULE`` for
    "continuous", (``DEFAULT_START``, eta in u of ``DISCRETE_RULE``) for "discrete"."""
    if kind == "discrete":
        return DEFAULT_START, discrete_row(nfe).eta
    if kind != "continuous":
        raise ValueError(f"kind: the start is by NFE for 'continuous' and 'discrete' data, not {kind!r}")
    return rule_row(CONTINUOUS_START_RULE, nfe)[1:]


def default_continuous_start(process: BFNProcess, nfe: int | None) -> tuple[str, float]:
    """(start, t_start) for continuous data at ``nfe`` calls (None: 10): ``CONTINUOUS_START_RULE``'s start state
    and lambda(t_start) (``start_row``), capped at lambda(1) - MIN_SPAN."""
    start, lam = start_row("continuous", nfe)
    lam = min(lam, float(process.lam(1.0)) - MIN_SPAN)
    return start, float(process.t_of_lam(torch.tensor(lam, dtype=torch.float64)))


def default_discrete_eta(nfe: int | None) -> float:
    """The start of discrete data in the natural time u at ``nfe`` calls (None: 10): ``DISCRETE_RULE``."""
    return discrete_row(nfe).eta


def default_start(process: BFNProcess, nfe: int | None) -> str:
    """The start state ``sample`` draws when ``start`` is left out: by NFE for continuous data
    (``default_continuous_start``), ``DEFAULT_START`` otherwise."""
    return default_continuous_start(process, nfe)[0] if DEFAULTS[process.kind].t_start == "rule" else DEFAULT_START


def default_t_start(process: BFNProcess, solver: str, nfe: int | None = None) -> float:
    """The original sampler starts at the prior (t = 0); otherwise the data type's rule (``DEFAULTS``; continuous
    data: by NFE, ``default_continuous_start``; discrete: by NFE in u, ``default_discrete_eta``)."""
    if solver == "bfn":
        return 0.0
    rule = DEFAULTS[process.kind].t_start
    if rule == "eta":
        return float(process.t_of_natural_time(torch.tensor(default_discrete_eta(nfe), dtype=torch.float64)))
    if rule == "rule":
        return default_continuous_start(process, nfe)[1]
    return float(process.t_of_lam(process.lam(1.0) - DEFAULT_SPAN))


def default_final(solver: str, process: BFNProcess | None = None, nfe: int | None = None) -> str:
    """The original sampler (and the reference ODE) end with a call at t = 1; the others with the data type's
    final step (``DEFAULTS``: "drop", x0_hat at the last-but-one grid time, for continuous and discretised data;
    discrete data: by NFE, ``DISCRETE_RULE``)."""
    if solver in ("bfn", "reference"):
        return "denoise"
    if process is None:
        return "drop"
    return discrete_row(nfe).final if process.kind == "discrete" else DEFAULTS[process.kind].final


def default_lower_order_final(kind: str, steps: int) -> bool:
    """DPM-Solver's rule for continuous data: lower orders at the final steps below 10 steps; for "continuous" not
    at 3 steps or fewer (NFE <= 4 with the last step dropped): there the family's choosing half reads a median score
    of 4.71 without vs 5.26 with it, and the digits model a digits FD of 157 vs 172; at 4 - 9 steps it helps (NFE 5:
    2.94 vs 3.75; benchmarks/results/families/choose.md). Not for discrete data: there it raises the Markov
    family's rule score (choosing half, benchmarks/results/families-markov: mean log over NFE 4-20 of the median
    floor ratio) from 1.152 to 1.243 (sde-bfn-unipc3-t) and from 1.245 to 1.281 (bfn-unipc3-t)."""
    if kind == "discrete":
        return False
    return (4 if kind == "continuous" else 1) <= steps < 10


def resolve_defaults(process: BFNProcess, solver: str | None, schedule, t_start: float | None,
                     final: Final | None, nfe: int | None = None) -> tuple[str, str | Sequence[float] | Tensor, float, Final]:
    """(solver, schedule, t_start, final) with every None replaced by the measured default for the data type
    (at ``nfe`` calls, None: 10)."""
    solver = default_solver(process, nfe) if solver is None else solver
    return (solver, default_schedule(process, solver) if schedule is None else schedule,
            default_t_start(process, solver, nfe) if t_start is None else float(t_start),
            default_final(solver, process, nfe) if final is None else final)
