"""``sample``: wrap the model, build the grid, draw the start state, run a solver, read out."""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from .models import Denoiser
from .processes import BFNProcess, DiscreteBFN
from .schedules import ScheduleName, get_times
from .solvers import get_solver

Final = Literal["denoise", "state", "drop"]
Readout = Literal["mean", "mode", "sample"]

#: Start times of the published BFN-Solvers (CIFAR-10 and text8 configs): eta.
PUBLISHED_ETA = {"continuous": 1e-2, "discrete": 1e-3}


@dataclass
class SampleInfo:
    """What a call of ``sample`` did: NFE counted by wrapping the model, grid, wall time."""

    solver: str
    nfe: int
    times: Tensor
    final: str
    wall_time: float
    schedule: str
    trajectory: list[Tensor] = field(default_factory=list)


def data_kind(process: BFNProcess) -> str:
    return "discrete" if isinstance(process, DiscreteBFN) else ("discretised" if hasattr(process, "num_bins") else "continuous")


#: Default log-SNR span of the grid for continuous data: it starts where
#: lambda = lambda(1) - DEFAULT_SPAN (t = 0.0011 for sigma_1 = 1e-3). Chosen among 8-11 on the GMM
#: oracle (benchmarks/beyond.py: 8 and 9 equal within noise) and the digits model (NFE 10 digits FD,
#: ODE/SDE: span 8 163/129, span 9 117/108, span 10 115/119): see benchmarks/results/beyond.md.
DEFAULT_SPAN = 9.0


def default_solver(process: BFNProcess) -> str:
    """The best measured solver at NFE 10 on the shipped models (benchmarks/results/beyond-models.md): the
    2M predictor with a UniPC-style corrector (bfn-unipc3) on the log-SNR grid for continuous data; for
    discrete data the SDE solver polynomial in t with a corrector (sde-bfn-unipc3-t) on the uniform grid
    (its ODE counterpart bfn-unipc3-t is better on the exact Markov oracle, worse on the text model)."""
    return "sde-bfn-unipc3-t" if isinstance(process, DiscreteBFN) else "bfn-unipc3"


def default_schedule(process: BFNProcess, solver: str) -> str:
    """Uniform in t for the original sampler and for discrete data (the text8 regime: lambda(1) = -1.9,
    e_hat is smooth in t, not in lambda); uniform in log-SNR otherwise."""
    return "uniform" if solver == "bfn" or isinstance(process, DiscreteBFN) else "logsnr"


def default_t_start(process: BFNProcess, solver: str) -> float:
    """The original sampler starts at the prior (t = 0); discrete data at the published eta; continuous
    data where lambda = lambda(1) - DEFAULT_SPAN (the published eta = 0.01 ignores a(eta) E[x] at a
    half log-SNR of -0.95 for sigma_1 = 1e-3 and makes the ODE solvers plateau)."""
    if solver == "bfn":
        return 0.0
    if isinstance(process, DiscreteBFN):
        return PUBLISHED_ETA["discrete"]
    return float(process.t_of_lam(process.lam(1.0) - DEFAULT_SPAN))


def default_final(solver: str) -> str:
    """The original sampler (and the reference ODE) end with a call at t = 1; the others with x0_hat
    at the last-but-one grid time."""
    return "denoise" if solver in ("bfn", "reference") else "drop"


def resolve_defaults(process: BFNProcess, solver: str | None, schedule, t_start: float | None,
                     final: Final | None) -> tuple[str, ScheduleName | Sequence[float] | Tensor, float, Final]:
    """(solver, schedule, t_start, final) with every None replaced by the measured default for the data type."""
    solver = default_solver(process) if solver is None else solver
    return (solver, default_schedule(process, solver) if schedule is None else schedule,
            default_t_start(process, solver) if t_start is None else float(t_start),
            default_final(solver) if final is None else final)


def plan_steps(nfe: int, final: Final, nfe_per_step: int) -> int:
    """Number of grid steps that spend exactly ``nfe`` network calls with this final step: "denoise"
    adds one call after the last step, "drop" replaces the last step by one call (the readout at
    the last-but-one time), "state" adds none."""
    if not isinstance(nfe, int) or isinstance(nfe, bool):
        raise ValueError(f"nfe must be an integer, got {nfe!r}")
    reserved = 0 if final == "state" else 1
    steps, rest = divmod(nfe - reserved, nfe_per_step)
    steps += final == "drop"
    if steps < 1:
        lowest = reserved + (0 if final == "drop" else nfe_per_step)
        raise ValueError(f"nfe must be at least {lowest} for this solver with final={final!r}, got {nfe}")
    if rest:
        raise ValueError(f"nfe: this solver with final={final!r} spends {nfe_per_step}k + {reserved} calls, "
                         f"got {nfe} (use {nfe - rest} or {nfe - rest + nfe_per_step})")
    return steps


def readout(process: BFNProcess, dist, how: Readout, generator: torch.Generator | None) -> Tensor:
    """Samples from the final output distribution: its mean (continuous), mode, or a draw."""
    if how == "mean" and not isinstance(process, DiscreteBFN):
        return dist.mean
    if how == "mode" or how == "mean":
        return dist.mode
    if how == "sample":
        return dist.sample(generator)
    raise ValueError(f"readout must be 'mean', 'mode' or 'sample', got {how!r}")


def state_readout(process: BFNProcess, z: Tensor, t: Tensor) -> Tensor:
    """Samples read from the final state without a network call: mu / gamma, or argmax y."""
    if isinstance(process, DiscreteBFN):
        return z.argmax(-1)
    x = z / process.a(t).to(z.dtype)
    return x if process.x_range is None else x.clamp(*process.x_range)


def sample(model: Callable | Denoiser, process: BFNProcess, solver: str | None = None, nfe: int = 10,
           schedule: ScheduleName | Sequence[float] | Tensor | None = None, shape: Sequence[int] | None = None, *,
           t_start: float | None = None, final: Final | None = None, readout_as: Readout = "mean",
           generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
           device: torch.device | str = "cpu", z_start: Tensor | None = None, callback: Callable | None = None,
           return_trajectory: bool = False, **solver_options) -> tuple[Tensor, SampleInfo]:
    """Draw samples from a BFN with a registered solver in ``nfe`` network calls.

    shape: shape of the samples (B, ...) (discrete data: class indices; the state gets a
    trailing K). schedule: "uniform" | "logsnr" | "quadratic" | "quadratic-start" or a list of BFN times.
    t_start: first grid time; sampling starts from z ~ N(0, s(t_start)^2 I), the prior
    state at t = 0 propagated without its mean (exact as t_start -> 0). final: "denoise"
    (steps to t = 1, then one call returns the output distribution, as BFN does), "state"
    (read the final state, no extra call) or "drop" (the published last_drop: the last step
    is replaced by the output at the last-but-one grid time). solver, schedule, t_start and
    final left as None take the best measured defaults for the data type (``default_solver``,
    ``default_schedule``, ``default_t_start``, ``default_final``). Returns (samples, info).
    """
    solver, schedule, t_start, final = resolve_defaults(process, solver, schedule, t_start, final)
    spec = get_solver(solver)
    kind = data_kind(process)
    if kind not in spec.data:
        raise ValueError(f"solver {solver!r} supports {spec.data} data, not {kind}")
    if final not in ("denoise", "state", "drop"):
        raise ValueError(f"final must be 'denoise', 'state' or 'drop', got {final!r}")
    denoiser = model if isinstance(model, Denoiser) else Denoiser(model, process)
    denoiser.nfe = 0

    if z_start is None:
        if shape is None or len(shape) < 1 or any(int(d) < 1 for d in shape):
            raise ValueError(f"shape must be a non-empty sequence of positive sizes (B, ...), got {shape!r}")
        state_shape = tuple(shape) + ((process.num_classes,) if kind == "discrete" else ())
    if solver == "reference" and final == "drop":
        raise ValueError("final='drop' has no last step to drop for the adaptive reference solver; use 'denoise' or 'state'")
    if isinstance(schedule, str) and solver == "reference":
        ts = torch.tensor([t_start, 1.0], dtype=torch.float64)
    else:
        steps = plan_steps(nfe, final, spec.nfe_per_step) if isinstance(schedule, str) else None
        ts = get_times(schedule, steps or 0, process, t_start)
    if final == "drop":
        ts = ts[:-1]
    if z_start is None:
        z = process.prior_state(state_shape, ts[0], generator, dtype, device)
    else:
        z = z_start.to(dtype=dtype, device=device)

    trajectory: list[Tensor] = []

    def on_step(info: dict) -> None:
        if return_trajectory:
            trajectory.append(info["z"])
        if callback is not None:
            callback(info)

    options = dict(solver_options)
    if "lower_order_final" in inspect.signature(spec.fn).parameters:
        # DPM-Solver's rule for continuous data: lower orders at the final steps below 10 steps. Not for
        # discrete data: there it raises the Markov oracle's error at NFE 4-6 by 1.4-1.6x (bfn-unipc3-t).
        options.setdefault("lower_order_final", len(ts) - 1 < 10 and kind != "discrete")
    if spec.stochastic:
        options.setdefault("generator", generator)
    start = time.perf_counter()
    z = spec(denoiser, z, ts, callback=on_step, **options)
    if final == "state":
        x = state_readout(process, z, ts[-1])
    else:
        x = readout(process, denoiser.output(z, ts[-1]), readout_as, generator)
    if return_trajectory:
        trajectory.append(z)
    wall = time.perf_counter() - start
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise FloatingPointError(f"solver {solver!r} produced non-finite samples (nfe={nfe}, schedule={schedule!r}, "
                                 f"t_start={t_start}); try float64, a later t_start or another schedule")
    info = SampleInfo(solver, denoiser.nfe, ts, final, wall, schedule if isinstance(schedule, str) else "custom", trajectory)
    return x, info
