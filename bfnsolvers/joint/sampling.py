"""``sample_joint``: every modality of a joint BFN with its own solver, one joint network call per step."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..denoiser import Cond
from ..rng import PerSample, RandomSource, as_random_source
from ..defaults import DEFAULT_SPAN, PUBLISHED_ETA, default_lower_order_final
from ..sampling import MAX_NFE, calls_of_grid, plan_steps, readout, state_readout
from ..solvers import SolverSpec, get_solver
from .geometry import FreshPerDraw, check_node_mask, node_noise
from .grids import joint_schedules, joint_times
from .lockstep import LockStep, joint_reference
from .model import JointDenoiser
from .process import JointBFN

#: Default grid rule, measured on the joint oracle (benchmarks/results/joint/report.md).
DEFAULT_SCHEDULE = "logsnr-mean"


@dataclass
class JointSampleInfo:
    """What ``sample_joint`` did: one NFE per joint network call."""

    solvers: dict[str, str]
    nfe: int
    times: Tensor
    final: str
    schedule: str
    wall_time: float
    states: dict[str, Tensor] = field(default_factory=dict)
    forward_batch_sizes: list[int] = field(default_factory=list)

    @property
    def forward_passes(self) -> int:
        return len(self.forward_batch_sizes)


def default_solvers(joint: JointBFN) -> dict[str, str]:
    """bfn-unipc3 for continuous / discretised modalities, bfn-unipc3-t for discrete ones (the ODE
    solvers: deterministic given the start state; measured in benchmarks/results/joint/report.md)."""
    return {name: ("bfn-unipc3-t" if joint.kind(name) == "discrete" else "bfn-unipc3") for name in joint}


def default_t_start(joint: JointBFN, solvers: Mapping[str, str]) -> float:
    """0 when every modality uses the original sampler; else the earliest single-modality default
    (continuous: lambda(1) - DEFAULT_SPAN; discrete: the published eta = 0.001)."""
    if all(s == "bfn" for s in solvers.values()):
        return 0.0
    starts = [PUBLISHED_ETA["discrete"] if joint.kind(n) == "discrete"
              else float(p.t_of_lam(p.lam(1.0) - DEFAULT_SPAN)) for n, p in joint.items()]
    return min(starts)


def _resolve_solvers(joint: JointBFN, solver) -> dict[str, SolverSpec]:
    if solver is None:
        names = default_solvers(joint)
    elif isinstance(solver, str):
        names = {name: solver for name in joint}
    elif isinstance(solver, Mapping):
        if set(solver) != set(joint):
            raise ValueError(f"solver: a dict needs exactly the modalities {list(joint)}, got {list(solver)}")
        names = dict(solver)
    else:
        raise ValueError(f"solver must be a name, a dict name -> solver name, or None, got {type(solver).__name__}")
    specs = {name: get_solver(s) for name, s in names.items()}
    for name, spec in specs.items():
        if joint.kind(name) not in spec.data:
            raise ValueError(f"solver: {spec.name!r} supports {spec.data} data, not modality {name!r} ({joint.kind(name)})")
    if len({spec.nfe_per_step for spec in specs.values()}) > 1:
        raise ValueError(f"solver: the modalities' solvers spend different calls per step "
                         f"({ {n: s.nfe_per_step for n, s in specs.items()} }); they must call the network together")
    if any(s.name == "reference" for s in specs.values()) and not all(s.name == "reference" for s in specs.values()):
        raise ValueError("solver: 'reference' (adaptive dopri5) integrates every modality at once; use it for all")
    return specs


def _check_shapes(joint: JointBFN, shapes) -> dict[str, tuple[int, ...]]:
    if not isinstance(shapes, Mapping) or set(shapes) != set(joint):
        got = list(shapes) if isinstance(shapes, Mapping) else type(shapes).__name__
        raise ValueError(f"shapes must map exactly the modalities {list(joint)} to sample shapes (B, ...), got {got}")
    out = {}
    for name, shape in shapes.items():
        shape = tuple(shape) if isinstance(shape, (tuple, list, torch.Size)) else shape
        if (not isinstance(shape, tuple) or not shape
                or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape)):
            raise ValueError(f"shapes[{name!r}] must be a non-empty tuple of positive integers (B, ...), got {shape!r}")
        out[name] = shape
    batches = {s[0] for s in out.values()}
    if len(batches) > 1:
        raise ValueError(f"shapes: every modality needs the same batch size first, got { {n: s[0] for n, s in out.items()} }")
    for name in joint.zero_com:
        if len(out[name]) != 3:
            raise ValueError(f"shapes[{name!r}]: coordinates need shape (B, N, D), got {out[name]}")
    return out


def _split_generator(generator: RandomSource, names: Sequence[str], device) -> dict[str, RandomSource]:
    """One random source per modality (each modality's solver runs in its own thread, so they must not
    share one): seeds drawn in modality order from the caller's generator, or from each sample's (then every
    draw is made from fresh per-sample generators, ``FreshPerDraw``, so padding never shifts a sample's noise)."""
    if generator is None:
        return {name: None for name in names}
    if isinstance(generator, PerSample):
        seeds = [torch.randint(0, 2 ** 62, (len(names),), generator=g).tolist() for g in generator.generators]
        return {name: FreshPerDraw([s[j] for s in seeds], device) for j, name in enumerate(names)}
    seeds = torch.randint(0, 2 ** 62, (len(names),), generator=generator).tolist()
    return {name: torch.Generator(device).manual_seed(seeds[j]) for j, name in enumerate(names)}


def sample_joint(model: Callable, joint: JointBFN, solver: str | Mapping[str, str] | None = None, nfe: int | None = None,
                 schedule: str | Sequence[float] | Tensor | None = None, shapes: Mapping[str, Sequence[int]] | None = None,
                 *, mask: Tensor | None = None, cond: Cond = None, t_start: float | None = None, final: str | None = None,
                 generator: torch.Generator | Sequence[torch.Generator | int] | None = None,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
                 z_start: Mapping[str, Tensor] | None = None, output_types: Mapping[str, str] | None = None,
                 solver_options: Mapping[str, dict] | None = None,
                 start: str | None = None) -> tuple[dict[str, Tensor], JointSampleInfo]:
    """Samples of every modality of ``joint`` in ``nfe`` joint network calls.

    solver: one registered name for all modalities, a dict name -> solver, or None (bfn-unipc3 /
    bfn-unipc3-t); each modality's solver runs its own update, all in lock-step on one grid.
    schedule: a joint grid rule (``bfnsolvers.joint.grids``; default "logsnr-mean", the original
    sampler "uniform") or a list of times. shapes: name -> sample shape (B, ...) (discrete: class
    indices; coordinates (B, N, D)). mask: bool (B, N), True for real nodes: every modality must then
    have (B, N) first; padded nodes keep their start state, their outputs are ignored, samples there
    are 0. Coordinates (``joint.zero_com``) have zero centre of mass over real nodes in the start
    state, every noise, every state the network sees and the samples. generator: a torch.Generator
    or one generator / int seed per sample (sample i then equals sample i drawn alone, whatever the
    batch and the padding, when real nodes come first). final, t_start as in ``bfnsolvers.sample``.
    start: "zero-mean" (z ~ N(0, s(t_start)^2 I), as ``bfnsolvers.sample``: it drops a(t_start) E[x0]) or
    "prior-mean" (one joint call at the prior's point mass, t = 0, gives E[x0] for every modality, and
    z ~ N(a(t_start) E[x0], s(t_start)^2 I); that call is one of the ``nfe``). None: "prior-mean" for
    fixed-step solvers from t_start > 0 without z_start (on the joint oracle zero-mean leaves the ODE
    solvers on a plateau: benchmarks/results/joint/report.md), else "zero-mean".
    Returns (samples dict, info) with info.nfe the number of joint calls.
    """
    if not isinstance(joint, JointBFN):
        raise ValueError(f"joint must be a JointBFN, got {type(joint).__name__}")
    denoiser = JointDenoiser(model, joint, output_types)
    specs = _resolve_solvers(joint, solver)
    names = {n: s.name for n, s in specs.items()}
    all_bfn = all(s == "bfn" for s in names.values())
    reference = all(s == "reference" for s in names.values())
    if t_start is not None and not (isinstance(t_start, (int, float)) and not isinstance(t_start, bool) and 0 <= t_start < 1):
        raise ValueError(f"t_start must be a number in [0, 1), got {t_start!r}")
    t_start = default_t_start(joint, names) if t_start is None else float(t_start)
    final = ("denoise" if all_bfn or reference else "drop") if final is None else final
    if final not in ("denoise", "state", "drop"):
        raise ValueError(f"final must be 'denoise', 'state' or 'drop', got {final!r}")
    schedule = ("uniform" if all_bfn else DEFAULT_SCHEDULE) if schedule is None else schedule
    if isinstance(schedule, str) and schedule not in joint_schedules(joint):
        raise ValueError(f"schedule must be one of {joint_schedules(joint)} or a list of times, got {schedule!r}")
    if nfe is not None and (not isinstance(nfe, int) or isinstance(nfe, bool) or not 1 <= nfe <= MAX_NFE):
        raise ValueError(f"nfe must be an integer in [1, {MAX_NFE}] or None, got {nfe!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype, got {dtype!r}")
    per_step = next(iter(specs.values())).nfe_per_step
    if start is None:
        start = "prior-mean" if t_start > 0 and not reference and z_start is None else "zero-mean"
    if start not in ("zero-mean", "prior-mean"):
        raise ValueError(f"start must be 'zero-mean' or 'prior-mean', got {start!r}")
    if start == "prior-mean" and (t_start <= 0 or reference):
        raise ValueError("start='prior-mean' needs t_start > 0 and a fixed-step solver (not 'reference')")
    if start == "prior-mean" and z_start is not None:
        raise ValueError("start='prior-mean' draws the start state; it cannot be combined with z_start")
    extra = start == "prior-mean"
    if extra and nfe is not None:
        if nfe < 2:
            raise ValueError(f"nfe must be at least 2 with start='prior-mean' (one call for the prior mean), got {nfe}")
        nfe = nfe - 1
    if reference:
        if nfe is not None:
            raise ValueError("nfe: the adaptive reference solver spends what its tolerances need; omit nfe")
        if final == "drop":
            raise ValueError("final='drop' has no last step to drop for the reference solver")
        ts = torch.tensor([t_start, 1.0], dtype=torch.float64) if isinstance(schedule, str) else joint_times(schedule, 1, joint, t_start)
    elif isinstance(schedule, str):
        ts = joint_times(schedule, plan_steps(10 if nfe is None else nfe, final, per_step), joint, t_start)
    else:
        ts = joint_times(schedule, 1, joint, t_start)
        spent = calls_of_grid(len(ts), final, per_step)
        if nfe is not None and nfe != spent:
            raise ValueError(f"nfe={nfe + extra}, but a schedule of {len(ts)} times with final={final!r} spends "
                             f"{spent + extra} calls")
    if final == "denoise" and float(ts[-1]) != 1.0:
        raise ValueError(f"final='denoise' needs a schedule ending at 1, got {float(ts[-1]):g}")
    if final == "drop":
        ts = ts[:-1]
    if float(ts[0]) <= 0 and not all(s.from_prior for s in specs.values()):
        raise ValueError(f"t_start: the solvers {sorted({s.name for s in specs.values() if not s.from_prior})} need a "
                         f"start time > 0 (the state at t = 0 is a point mass), got {float(ts[0]):g}")
    # shapes, mask, start state
    if z_start is not None:
        if not isinstance(z_start, Mapping) or set(z_start) != set(joint):
            raise ValueError(f"z_start must map exactly the modalities {list(joint)} to start states")
        zs = {n: z.detach().to(dtype=dtype, device=device) for n, z in z_start.items()}
        samples_shapes = {n: tuple(z.shape[:-1]) if joint.kind(n) == "discrete" else tuple(z.shape) for n, z in zs.items()}
        for n, z in zs.items():
            if joint.kind(n) == "discrete" and z.shape[-1] != joint[n].num_classes:
                raise ValueError(f"z_start[{n!r}] needs a trailing K = {joint[n].num_classes}, got shape {tuple(z.shape)}")
        samples_shapes = _check_shapes(joint, samples_shapes)
    else:
        if shapes is None:
            raise ValueError("shapes must be given (name -> (B, ...)) when z_start is not")
        samples_shapes = _check_shapes(joint, shapes)
    batch = next(iter(samples_shapes.values()))[0]
    if mask is not None:
        nodes = {n: (s[1] if len(s) > 1 else None) for n, s in samples_shapes.items()}
        if isinstance(mask, Tensor) and mask.dim() == 2 and any(v != mask.shape[1] for v in nodes.values()):
            raise ValueError(f"mask has {mask.shape[1]} nodes but the modalities' shapes have {nodes} (every modality "
                             f"needs (B, N, ...) with the mask's N)")
        mask = check_node_mask(mask, batch, next(iter(nodes.values())) or 0).to(device)
    source = as_random_source(generator, batch, torch.device(device))
    sources = _split_generator(source, joint.names, torch.device(device))
    denoiser.configure(batch, cond=cond, mask=mask)
    with torch.no_grad():
        if z_start is None:
            zs = {}
            for n, p in joint.items():
                shape = joint.state_shape(n, samples_shapes[n])
                s0 = float(p.s(ts[0]))
                eps = node_noise(shape, sources[n], dtype, device, mask, n in joint.zero_com)
                zs[n] = s0 * eps
            if extra:                                   # E[x0] from the prior's point mass at t = 0
                prior = denoiser.outputs({n: torch.zeros_like(z) for n, z in zs.items()}, 0.0)
                zs = {n: z + float(joint[n].a(ts[0])) * joint[n].dist_to_x0(prior[n]) for n, z in zs.items()}
        else:
            zs = denoiser.constrain(zs)
        denoiser.configure(batch, cond=cond, mask=mask, hold={n: z.clone() for n, z in zs.items()})
        start = time.perf_counter()
        if reference:
            finals = joint_reference(denoiser, zs, ts, **(solver_options or {}).get(next(iter(joint.names)), {}))
        else:
            finals = LockStep(denoiser).run(_solver_calls(joint, specs, sources, mask, len(ts), solver_options), zs, ts)
        finals = denoiser.constrain(finals)
        samples = {}
        if final == "state":
            for n, z in finals.items():
                samples[n] = state_readout(joint[n], z, ts[-1])
        else:
            dists = denoiser.outputs(finals, ts[-1])
            for n in joint:
                samples[n] = readout(joint[n], dists[n], "mean", sources[n])
        denoiser.check_finite()
        if mask is not None:
            for n, x in samples.items():
                keep = mask.reshape(mask.shape + (1,) * (x.dim() - 2))
                samples[n] = torch.where(keep, x, torch.zeros((), dtype=x.dtype))
        wall = time.perf_counter() - start
    info = JointSampleInfo(names, denoiser.nfe, ts, final, schedule if isinstance(schedule, str) else "custom", wall,
                           finals, denoiser.forward_batches)
    return samples, info


def _solver_calls(joint: JointBFN, specs: dict[str, SolverSpec], sources: dict, mask, num_times: int,
                  solver_options: Mapping[str, dict] | None) -> dict[str, tuple[Callable, dict]]:
    """(fn, options) per modality: the registered solver with its own generator and noise (zero CoM for
    coordinates, zero on padded nodes, prefix-stable per sample) and DPM-Solver's lower order at the final
    steps below 10 steps for continuous data, as ``bfnsolvers.sample`` sets it."""
    solver_options = dict(solver_options or {})
    if set(solver_options) - set(joint):
        raise ValueError(f"solver_options: unknown modalities {sorted(set(solver_options) - set(joint))}")
    calls = {}
    for name, spec in specs.items():
        options = dict(solver_options.get(name, {}))
        unknown = spec.unknown_options(options)
        if unknown:
            raise ValueError(f"solver_options[{name!r}]: solver {spec.name!r} takes no option {unknown[0]!r}")
        if "lower_order_final" in (spec.option_names() or ()):
            options.setdefault("lower_order_final", default_lower_order_final(joint.kind(name), num_times - 1))
        if spec.stochastic:
            src, zero_com = sources[name], name in joint.zero_com
            options.setdefault("generator", src)
            options.setdefault("noise_sampler", lambda z, src=src, zc=zero_com: node_noise(
                tuple(z.shape), src, z.dtype, z.device, mask if (mask is not None or zc) else None, zc))
        calls[name] = (lambda model, z, ts, spec=spec, **kw: spec(model, z, ts, **kw), options)
    return calls
