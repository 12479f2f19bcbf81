"""``sample``: wrap the model, build the grid, draw the start state, run a solver, read out."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

from ._checks import is_int, is_real
from .defaults import (DEFAULT_SPAN, DEFAULT_START, DEFAULTS, FINALS, PUBLISHED_ETA, READOUTS, Final, Readout,  # noqa: F401
                       data_kind, default_continuous_start, default_final, default_lower_order_final, default_start,
                       default_schedule, default_solver, default_t_start, resolve_defaults)
from .denoiser import Cond, Denoiser
from .processes import BFNProcess
from .rng import as_random_source, randn
from .schedules import SCHEDULES, ScheduleName, check_times, get_times
from .solvers import get_solver


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
    #: Batch size of every network forward pass (guidance: 2B per data prediction, or B twice).
    forward_batch_sizes: list[int] = field(default_factory=list)

    @property
    def forward_passes(self) -> int:
        """Network forward passes (equal to ``nfe`` without guidance)."""
        return len(self.forward_batch_sizes)


#: Largest NFE sample() accepts (a grid beyond it is a typo, e.g. nfe=10**12 would allocate terabytes).
MAX_NFE = 1_000_000


def plan_steps(nfe: int, final: Final, nfe_per_step: int) -> int:
    """Number of grid steps that spend exactly ``nfe`` network calls with this final step: "denoise"
    adds one call after the last step, "drop" replaces the last step by one call (the readout at
    the last-but-one time), "state" adds none."""
    if not is_int(nfe):
        raise ValueError(f"nfe must be an integer, got {nfe!r}")
    if nfe > MAX_NFE:
        raise ValueError(f"nfe must be at most {MAX_NFE}, got {nfe}")
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


def calls_of_grid(num_times: int, final: Final, nfe_per_step: int) -> int:
    """Network calls a grid of ``num_times`` times spends: (n - 1) steps' calls plus the final call
    for "denoise", the readout replacing the last step for "drop", none for "state" (inverse of ``plan_steps``)."""
    steps = num_times - 1
    if final == "drop":
        return (steps - 1) * nfe_per_step + 1
    return steps * nfe_per_step + (final == "denoise")


def readout(process: BFNProcess, dist, how: Readout, generator: torch.Generator | None) -> Tensor:
    """Samples from the final output distribution: its mean (continuous), mode, or a draw (``process.readout``)."""
    return process.readout(dist, how, generator)


def state_readout(process: BFNProcess, z: Tensor, t: Tensor) -> Tensor:
    """Samples read from the final state without a network call: mu / gamma, or argmax y (``process.state_readout``)."""
    return process.state_readout(z, t)


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if (not isinstance(shape, (tuple, list)) or len(shape) < 1
            or any(not is_int(d) or d < 1 for d in shape)):
        raise ValueError(f"shape must be a non-empty tuple of positive integers (B, ...), got {shape!r}")
    return tuple(shape)


def _check_device(device) -> torch.device:
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, TypeError, AssertionError) as err:
        raise ValueError(f"device '{device}' is not available here ({str(err).splitlines()[0]})") from None
    return device


def _check_options(spec, options: dict) -> None:
    unknown = spec.unknown_options(options)
    if unknown:
        raise ValueError(f"solver {spec.name!r} takes no option {unknown[0]!r} (its options: {spec.option_names()})")


def build_grid(process: BFNProcess, spec, nfe: int | None, schedule, t_start: float, final: Final) -> Tensor:
    """The times the solver steps through (the dropped last time of final="drop" already removed),
    with ``nfe`` checked against what the grid spends."""
    if isinstance(schedule, str) and schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES} or a list of times, got {schedule!r}")
    if spec.name == "reference":
        if nfe is not None:
            raise ValueError("nfe: the adaptive reference solver spends what its tolerances need; omit nfe (set rtol/atol)")
        if final == "drop":
            raise ValueError("final='drop' has no last step to drop for the adaptive reference solver; use 'denoise' or 'state'")
        ts = torch.tensor([t_start, 1.0], dtype=torch.float64) if isinstance(schedule, str) else check_times(schedule)
    elif isinstance(schedule, str):
        ts = get_times(schedule, plan_steps(10 if nfe is None else nfe, final, spec.nfe_per_step), process, t_start)
    else:
        ts = check_times(schedule)
        spent = calls_of_grid(len(ts), final, spec.nfe_per_step)
        if nfe is not None and nfe != spent:
            how = {"drop": "its last time dropped, the readout at the one before",
                   "denoise": "steps through every time, then one call at t = 1", "state": "no final call"}[final]
            raise ValueError(f"nfe={nfe}, but a schedule of {len(ts)} times with final={final!r} ({how}) spends "
                             f"{spent} calls: omit nfe or pass nfe={spent}")
    if final == "denoise" and float(ts[-1]) != 1.0:
        raise ValueError(f"final='denoise' steps to t = 1 and ends with a call there: the schedule must end at 1, "
                         f"got {float(ts[-1]):g} (use final='state' or 'drop' to stop earlier)")
    if final == "drop":
        ts = ts[:-1]
    if float(ts[0]) <= 0 and not spec.from_prior:
        raise ValueError(f"solver {spec.name!r} needs a start time > 0 (s(0) = 0: the state at t = 0 is a point "
                         f"mass); got {float(ts[0]):g}; use t_start > 0 or the original sampler 'bfn'")
    return ts


def _grid_fits(nfe: int | None, final, spec) -> bool:
    """Whether nfe - 1 calls still make a grid (the default start spends a call only then)."""
    try:
        plan_steps(9 if nfe is None else nfe - 1, final, spec.nfe_per_step)
    except ValueError:
        return False
    return True


#: The start states ``sample`` can draw (``start=``).
STARTS: tuple[str, ...] = ("zero", "prior-mean")


def prior_mean_time(denoiser: Denoiser, t_start: float) -> float:
    """Where ``prior_mean`` calls the network: t = 0 (the prior's point mass), or t_start where the output
    is degenerate at t = 0 (eps-parameterised continuous / discretised outputs give x_hat = 0 below t_min)."""
    degenerate = denoiser.output_type.startswith("eps") and getattr(denoiser.process, "t_min", 0.0) > 0
    return float(t_start) if degenerate else 0.0


def prior_mean(denoiser: Denoiser, state_shape: tuple[int, ...], t_start: float, dtype, device) -> Tensor:
    """E[x0] from one network call at the prior state z = 0 (at ``prior_mean_time``): exact at t = 0; at
    (z = 0, t_start) it is E[x0 | z = 0] = E[x0] - r^2 Cov[x0] E[x0] + O(r^3), r = a/s at t_start."""
    z = torch.zeros(state_shape, dtype=dtype, device=device)
    return denoiser(z, prior_mean_time(denoiser, t_start))


def sample(model: Callable | Denoiser, process: BFNProcess, solver: str | None = None, nfe: int | None = None,
           schedule: ScheduleName | Sequence[float] | Tensor | None = None, shape: Sequence[int] | None = None, *,
           t_start: float | None = None, final: Final | None = None, readout_as: Readout = "mean",
           generator: torch.Generator | Sequence[torch.Generator | int] | None = None,
           dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu", z_start: Tensor | None = None,
           callback: Callable | None = None, return_trajectory: bool = False, cond: Cond = None,
           uncond: Cond = None, guidance: float = 0.0, temperature: float = 1.0, noise_scale: float = 1.0,
           class_mask: Tensor | None = None, constraint: Callable | None = None, start: str | None = None,
           **solver_options) -> tuple[Tensor, SampleInfo]:
    """Draw samples from a BFN with a registered solver in ``nfe`` network calls.

    BFN time runs from t = 0 (the prior) to t = 1 (the data). shape: shape of the samples (B, ...)
    (discrete data: class indices; the state gets a trailing K). nfe: network calls (default 10
    for a named schedule; with a list of times leave it out or give exactly what the list spends).
    schedule: "uniform" | "logsnr" | "quadratic" | "quadratic-start" or a list of BFN times.
    t_start: first grid time; sampling starts from z ~ N(0, s(t_start)^2 I), the prior state at
    t = 0 propagated without its mean (exact as t_start -> 0; at t_start = 0 the state is the
    point mass z = 0 and no noise is drawn). final: "denoise" (steps to t = 1, then one call returns
    the output distribution, as BFN does; the grid must end at 1), "state" (read the final state, no
    extra call) or "drop" (the published last_drop: the grid's last time is dropped and the output at
    the last-but-one time is read out). generator: a torch.Generator, or one generator or int seed per
    sample, so that sample i is the same in any batch. solver, schedule, t_start and final left as None
    take the best measured defaults for the data type. Runs without autograd; returns (samples, info).

    Any BFN: cond (a tensor, tuple or dict of tensors with the batch first) is passed to the model at
    every call; guidance=w > 0 uses (1 + w) cond - w uncond on the output (``bfnsolvers.outputs``), in
    one forward pass of twice the batch, or two passes when uncond is None (the model's own null
    condition); ``info.nfe`` counts data predictions, ``info.forward_batch_sizes`` the passes.
    temperature (discrete outputs: logits / T) and noise_scale (SDE solvers' noise times this) change
    the target distribution: sampling choices, not solver accuracy. class_mask (bool, True = allowed,
    broadcast to (..., K)) restricts discrete outputs exactly. constraint(z, t) -> z (e.g.
    ``bfnsolvers.constraints.Inpaint``, ``CentreOfMass``) replaces the state the network sees at every
    call and the final state; its ``samples(x)`` method, if any, is applied to the samples.

    start: "zero" (z ~ N(0, s^2 I) at t_start) or "prior-mean" (one call at the prior state gives
    m = E[x0], ``prior_mean``; z ~ N(a m, s^2 I); the call is one of the ``nfe``, so the grid has one
    call fewer). In units of s the true marginal is r x0 + eps, r = a/s = e^lambda(t_start): "zero"
    misses its mean r E[x0], KL = r^2 |E x0|^2 / 2 + O(r^4); "prior-mean" misses only its covariance
    r^2 Cov[x0], KL = r^4 tr(Cov^2) / 4 + O(r^5) (measured slopes 2 and 4: tests/test_start.py).
    None: for fixed-step solvers on a named grid from t_start > 0 without z_start whose nfe - 1 calls still make a
    grid, the data type's default (continuous: by NFE, ``defaults.default_continuous_start``, also with a given
    t_start; otherwise ``DEFAULT_START``), else "zero". t_start None: the data type's rule at this nfe.
    """
    if not isinstance(process, BFNProcess):
        raise ValueError(f"process must be a BFNProcess (e.g. ContinuousBFN(sigma_1)), got {type(process).__name__}")
    if isinstance(model, Denoiser):
        if model.process is not process:
            raise ValueError(f"model: the Denoiser wraps {model.process!r}, not the process given ({process!r})")
        denoiser = model.fork()
    else:
        denoiser = Denoiser(model, process)
    if t_start is not None and not (is_real(t_start) and 0 <= t_start < 1):
        raise ValueError(f"t_start must be a number in [0, 1), got {t_start!r}")
    solver, schedule, t_start, final = resolve_defaults(process, solver, schedule, t_start, final, nfe)
    spec = get_solver(solver)
    kind = data_kind(process)
    if kind not in spec.data:
        raise ValueError(f"solver {solver!r} supports {spec.data} data, not {kind}")
    if final not in FINALS:
        raise ValueError(f"final must be 'denoise', 'state' or 'drop', got {final!r}")
    if readout_as not in READOUTS:
        raise ValueError(f"readout_as must be 'mean', 'mode' or 'sample', got {readout_as!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype (e.g. torch.float32), got {dtype!r}")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable as callback(info: dict), got {type(callback).__name__}")
    if nfe is not None and not (is_int(nfe) and 1 <= nfe <= MAX_NFE):
        raise ValueError(f"nfe must be an integer in [1, {MAX_NFE}] or None, got {nfe!r}")
    device = _check_device(device)
    _check_options(spec, solver_options)
    if z_start is None:
        if shape is None:
            raise ValueError("shape must be given (B, ...) when z_start is not")
        state_shape = process.state_shape(_check_shape(shape))
    elif not isinstance(z_start, Tensor) or z_start.dim() < 1 or not bool(torch.isfinite(z_start).all()):
        raise ValueError("z_start must be a finite tensor with a batch dimension (B, ...)")
    fixed_start = spec.name != "reference" and float(t_start) > 0 and z_start is None
    if start is None:       # a list of times keeps the calls it names: the default start applies to named grids
        named = fixed_start and isinstance(schedule, str) and _grid_fits(nfe, final, spec)
        start = default_start(process, nfe) if named else "zero"
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    extra = start == "prior-mean"
    if extra and not fixed_start:
        raise ValueError("start='prior-mean' needs a fixed-step solver (not 'reference'), t_start > 0 and no z_start")
    if extra and nfe is not None and nfe < 2:
        raise ValueError(f"nfe must be at least 2 with start='prior-mean' (one call for the prior mean), got {nfe}")
    try:
        grid_nfe = nfe - extra if nfe is not None else (10 - extra if extra and isinstance(schedule, str) else None)
        ts = build_grid(process, spec, grid_nfe, schedule, t_start, final)
    except ValueError as err:
        if not extra:
            raise
        raise ValueError(f"{err} (start='prior-mean' spends one of the nfe calls: the grid gets nfe - 1)") from None
    batch = z_start.shape[0] if z_start is not None else state_shape[0]
    generator = as_random_source(generator, batch, device)
    denoiser.configure(batch, cond=cond, uncond=uncond, guidance=guidance, temperature=temperature,
                       class_mask=class_mask, constraint=constraint)
    if not (is_real(noise_scale) and noise_scale >= 0):
        raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale!r}")
    if noise_scale != 1.0:
        if not spec.stochastic or spec.name == "bfn":
            raise ValueError(f"noise_scale applies to the SDE solvers, not {spec.name!r}")
        solver_options = {**solver_options, "noise_sampler": lambda z: noise_scale * randn(z.shape, generator, z.dtype, z.device)}

    with torch.no_grad():
        if z_start is not None:
            z = z_start.detach().to(dtype=dtype, device=device)
        elif float(process.s(ts[0])) == 0:
            z = torch.zeros(state_shape, dtype=dtype, device=device)     # the prior's point mass: no draw spent
        else:
            mean = prior_mean(denoiser, state_shape, float(ts[0]), dtype, device) if extra else None
            z = process.prior_state(state_shape, ts[0], generator, dtype, device, mean=mean)
        return _run(denoiser, process, spec, z, ts, final, readout_as, generator, callback, return_trajectory,
                    schedule, solver_options)


def _run(denoiser: Denoiser, process: BFNProcess, spec, z: Tensor, ts: Tensor, final: Final, readout_as: Readout,
         generator, callback, return_trajectory: bool, schedule, solver_options: dict) -> tuple[Tensor, SampleInfo]:
    trajectory: list[Tensor] = []

    def on_step(info: dict) -> None:
        if return_trajectory:
            trajectory.append(info["z"])
        if callback is not None:
            callback(info)

    options = dict(solver_options)
    if "lower_order_final" in (spec.option_names() or ()):
        options.setdefault("lower_order_final", default_lower_order_final(process.kind, len(ts) - 1))
    if spec.stochastic:
        options.setdefault("generator", generator)
    start = time.perf_counter()
    z = spec(denoiser, z, ts, callback=on_step, **options)
    if denoiser.constraint is not None:
        z = denoiser.constrain(z, ts[-1].to(z.dtype).expand(z.shape[0]))
    if final == "state":
        masked = z if denoiser.class_mask is None else z.masked_fill(~denoiser.class_mask.to(z.device), float("-inf"))
        x = state_readout(process, masked, ts[-1])
    else:
        x = readout(process, denoiser.output(z, ts[-1]), readout_as, generator)
    if return_trajectory:
        trajectory.append(z)
    wall = time.perf_counter() - start
    denoiser.check_finite()
    if hasattr(denoiser.constraint, "samples"):
        x = denoiser.constraint.samples(x)
    if not bool(torch.isfinite(z).all()) or (x.is_floating_point() and not bool(torch.isfinite(x).all())):
        raise FloatingPointError(f"solver {spec.name!r} produced a non-finite state from finite model outputs "
                                 f"(grid {ts[0].item():.4g}..{ts[-1].item():.4g}, {len(ts)} times); "
                                 f"try float64, a later t_start or another schedule")
    info = SampleInfo(spec.name, denoiser.nfe, ts, final, wall, schedule if isinstance(schedule, str) else "custom",
                      trajectory, denoiser.forward_batches)
    return x, info
