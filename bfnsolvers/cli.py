"""Command line: ``bfnsolvers [sample] | solvers | train | sweep | report``.

``bfnsolvers`` with no subcommand (or only options) runs ``sample``: the shipped digits model
at NFE 10, written to samples.png. A user error (a bad argument, a missing file, a checkpoint
that does not match) prints one line ``bfnsolvers: error: ...`` to stderr and exits 2;
``--debug`` shows the traceback instead. A sweep whose cells recorded errors exits 1.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .defaults import DEFAULT_NFE, FINALS
from .schedules import SCHEDULES, parse_schedule  # noqa: F401 (parse_schedule: --schedule)

DEFAULT_CHECKPOINT = "digits-continuous"
#: Smallest side, in pixels, of one image in a written grid (8x8 digits are upscaled 8x).
MIN_IMAGE_PX = 64
#: Seconds a run lasts before its progress bar appears.
PROGRESS_DELAY_S = 1.0
#: Start states of the pilot run of ``--schedule calibrated``.
PILOT_STATES = 16
COMMANDS = ("sample", "solvers", "train", "sweep", "report")


class UsageError(Exception):
    """A command-line argument error (reported as one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with errors raised as UsageError (main prints them as one line) instead of usage + exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except None ("chosen at run time", described in the help text)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool):
            return action.help or ""
        return super()._get_help_string(action)


# --------------------------------------------------------------------------- argument types


def _argument_type(convert: Callable[[str], Any], ok: Callable[[Any], bool], expected: str, name: str):
    """An argparse type: ``convert(text)``, then ``ok(value)``, else "expected <expected>, got <text>"."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    parse.__name__ = name
    return parse


#: A positive integer; a generator seed in [0, 2**63 - 1); a finite BFN time in [0, 1).
positive_int = _argument_type(int, lambda v: v >= 1, "a positive integer", "positive_int")
seed_int = _argument_type(int, lambda v: 0 <= v < 2 ** 63 - 1, "an integer in [0, 2**63 - 1)", "seed_int")
unit_time = _argument_type(float, lambda v: math.isfinite(v) and 0 <= v < 1, "a finite number in [0, 1)", "unit_time")


def check_device(name: str) -> torch.device:
    """``--device`` as a torch.device that exists on this machine (ValueError otherwise)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device: expected cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} requested but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device: {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


# --------------------------------------------------------------------------- progress


class LazyProgress:
    """A rich progress bar on stderr that appears only once a run has lasted ``delay`` seconds."""

    def __init__(self, description: str, total: int, *, enabled: bool = True, delay: float = PROGRESS_DELAY_S,
                 console: Any = None):
        self.description, self.total, self.enabled, self.delay = description, max(int(total), 1), enabled, delay
        self.console, self.bar, self.task = console, None, None
        self.start = time.perf_counter()

    def update(self, done: int, total: int | None = None) -> None:
        """Mark ``done`` of ``total`` (default: the total given at construction) units as finished."""
        if not self.enabled:
            return
        if total is not None:
            self.total = max(int(total), 1)
        if self.bar is None and time.perf_counter() - self.start >= self.delay:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.console or Console(stderr=True), transient=False)
            self.task = self.bar.add_task(self.description, total=self.total)
            self.bar.start()
        if self.bar is not None:
            self.bar.update(self.task, completed=min(done, self.total), total=self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self) -> "LazyProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- sample


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``bfnsolvers sample`` (the default command)."""
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="shipped name, .safetensors or .pt path")
    parser.add_argument("--config", default=None, help="preset name or official YAML config (official checkpoints)")
    parser.add_argument("--solver", default=None,
                        help="registered solver (`bfnsolvers solvers`; default: the best measured for the data type)")
    parser.add_argument("--nfe", type=positive_int, default=None,
                        help=f"network calls (default: {DEFAULT_NFE}; with a list of times: what the list spends)")
    parser.add_argument("--schedule", type=parse_schedule, default=None,
                        help=f"time grid: {' | '.join(SCHEDULES)} | calibrated (a pilot run measures the model's "
                             "speed, bfnsolvers.calibrate) | comma-separated BFN times, e.g. 0.001,0.3,0.7,1 "
                             "(default: the solver's measured best)")
    parser.add_argument("--t-start", type=unit_time, default=None, help="first grid time (default: the solver's)")
    parser.add_argument("--final", default=None, choices=FINALS,
                        help="last step (default: the solver's; 'denoise' with --schedule calibrated)")
    parser.add_argument("-n", "--num-samples", type=positive_int, default=64, help="samples to draw")
    parser.add_argument("--seed", type=seed_int, default=0, help="generator seed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--out", default=None,
                        help="output file (default: samples.png for image checkpoints, samples.txt for text)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _calibrated_schedule(model: Any, process: Any, solver: str, nfe: int, final: str, shape: Sequence[int],
                         t_start: float, generator: torch.Generator, device: torch.device,
                         progress: bool) -> list[float]:
    """``calibrated_times(speed_profile(...), steps)`` for an ``nfe`` budget (docs/defaults.md, "Calibrated grids")."""
    from .calibrate import calibrated_times, speed_profile
    from .sampling import plan_steps
    from .solvers import get_solver

    if t_start <= 0:
        raise ValueError("t_start: --schedule calibrated needs t_start > 0 (the pilot ODE starts there)")
    steps = plan_steps(nfe, final, get_solver(solver).nfe_per_step)
    pilot_shape = (min(PILOT_STATES, shape[0]), *shape[1:])
    with LazyProgress("calibrating: pilot run", 200, enabled=progress) as bar:
        profile = speed_profile(model, process, pilot_shape, t_start, generator=generator, device=device,
                                progress=bar.update)
    return calibrated_times(profile, steps).tolist()


def run_sample(args: argparse.Namespace) -> int:
    """``bfnsolvers sample``: draw samples, write an image grid (PNG) or text (one sample a line)."""
    from .checkpoints import load_checkpoint
    from .defaults import DEFAULTS
    from .sampling import data_kind, default_final, default_t_start, plan_steps, sample
    from .solvers import get_solver

    device = check_device(args.device)
    if args.out is not None and not str(args.out).strip():
        raise ValueError("out: expected a file path, got ''")
    model, process = load_checkpoint(args.checkpoint, args.config, device=device)
    kind = data_kind(process)
    text = kind == "discrete" and len(getattr(model, "data_shape", ())) == 2
    shape = (args.num_samples,) + process.sample_shape(tuple(model.data_shape))
    generator = torch.Generator(device).manual_seed(args.seed)
    progress = not args.no_progress
    solver, schedule, final = args.solver, args.schedule, args.final
    if schedule == "calibrated":
        solver = solver or DEFAULTS[kind].ode_solver  # an ODE solver, as advised
        get_solver(solver)
        final = final or "denoise"
        t_start = args.t_start if args.t_start is not None else default_t_start(process, solver, args.nfe or DEFAULT_NFE)
        schedule = _calibrated_schedule(model, process, solver, args.nfe or DEFAULT_NFE, final, shape, t_start,
                                        torch.Generator(device).manual_seed(args.seed + 1), device, progress)
    solver_name = solver
    if solver_name is not None:
        get_solver(solver_name)
    if isinstance(schedule, list):
        total = len(schedule) - 1
    else:
        from .sampling import default_solver

        solver_name = solver_name or default_solver(process, args.nfe or DEFAULT_NFE)
        total = plan_steps(args.nfe or DEFAULT_NFE, final or default_final(solver_name, process, args.nfe or DEFAULT_NFE),
                           get_solver(solver_name).nfe_per_step)
    with LazyProgress(f"sampling {args.checkpoint}", total, enabled=progress) as bar, torch.no_grad():
        nfe = args.nfe if isinstance(schedule, list) else (args.nfe or DEFAULT_NFE)  # a list of times sets its NFE
        x, info = sample(model, process, solver, nfe, schedule, shape, t_start=args.t_start, final=final,
                         generator=generator, device=device, callback=lambda step: bar.update(int(step["i"]) + 1))
        bar.update(total)
    schedule_text = "calibrated" if args.schedule == "calibrated" else info.schedule
    print(f"checkpoint {args.checkpoint}  solver {info.solver}  schedule {schedule_text}  "
          f"NFE {info.nfe}  wall time {info.wall_time:.2f} s  samples {args.num_samples}")
    x = x.detach().cpu()
    if text:
        from .data import tokens_to_text

        out = Path(args.out or "samples.txt")
        lines = tokens_to_text(x)
        out.write_text("".join(line + "\n" for line in lines))
        for line in lines[:4]:
            print(repr(line))
    else:
        out = Path(args.out or "samples.png")
        if kind == "discrete":  # class-index images: 0 .. K-1 -> [-1, 1]
            x = x.float() / max(process.num_classes - 1, 1) * 2 - 1
        save_grid(x, out)
    print(f"wrote {out}")
    return 0


def save_grid(images: torch.Tensor, path: Path, min_px: int = MIN_IMAGE_PX) -> None:
    """Save (B, H, W, C) images in [-1, 1] as a square PNG grid, each image upscaled (nearest
    neighbour) to at least ``min_px`` pixels a side, with a 1-pixel-per-scale white border."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if images.dim() != 4:
        raise ValueError(f"images: expected (B, H, W, C), got shape {tuple(images.shape)}")
    b, h, w, c = images.shape
    cols = math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    grid = torch.ones(rows * (h + 1) + 1, cols * (w + 1) + 1, c)
    for i, img in enumerate(((images.detach().float().cpu().clamp(-1, 1) + 1) / 2)):
        r, q = divmod(i, cols)
        grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + q * (w + 1): 1 + q * (w + 1) + w] = img
    scale = max(1, math.ceil(min_px / min(h, w)))
    grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    plt.imsave(path, grid.squeeze(-1).numpy() if c == 1 else grid.numpy(), cmap="gray" if c == 1 else None,
               vmin=0, vmax=1)


def run_solvers(args: argparse.Namespace) -> int:
    """``bfnsolvers solvers``: the registered solvers."""
    from .solvers import SOLVERS
    for spec in SOLVERS.values():
        print(f"{spec.name:20s} order {spec.order}  {spec.kind.upper()}  {','.join(spec.data):34s} {spec.description}")
    return 0


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The ``bfnsolvers`` parser with its subcommands."""
    from .bench.cli import add_report_arguments, add_sweep_arguments
    from .train.cli import add_train_arguments

    parser = _Parser(prog="bfnsolvers", formatter_class=_Formatter,
                     description="Fast samplers for Bayesian Flow Networks. Without a subcommand: sample "
                                 "(the shipped digits model, NFE 10, writes samples.png).")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
        p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
        return p

    add_sample_arguments(add("sample", "sample a checkpoint (default: the shipped digits model)"))
    add("solvers", "list the registered solvers")
    add_train_arguments(add("train", "train a small BFN from a recipe"))
    add_sweep_arguments(add("sweep", "NFE-vs-quality sweep (resumable; exits 1 if a cell recorded an error)"))
    add_report_arguments(add("report", "render a sweep directory as markdown + PNG"))
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 a sweep with failed cells, 2 a user error)."""
    from .checkpoints import CheckpointError
    from .bench.results import SweepLockedError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["sample", *argv]  # no subcommand: the main job, `bfnsolvers sample [options]`
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError(f"expected a subcommand: one of {', '.join(COMMANDS)}")
        handlers: dict[str, Callable[[argparse.Namespace], Any]] = {
            "sample": run_sample, "solvers": run_solvers, "train": _run_train, "sweep": _run_sweep,
            "report": _run_report}
        result = handlers[args.command](args)
    except (UsageError, ValueError, CheckpointError, SweepLockedError, OSError) as exc:
        if debug:
            raise
        print(f"bfnsolvers: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("bfnsolvers: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


def _run_train(args: argparse.Namespace) -> int:
    from .train.cli import run_train

    check_device(args.device)
    run_train(args)
    return 0


def _run_sweep(args: argparse.Namespace) -> int:
    from .bench.cli import run_sweep_cli

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"threads: expected a positive integer, got {args.threads}")
    check_device(args.device)
    return run_sweep_cli(args)


def _run_report(args: argparse.Namespace) -> int:
    from .bench.cli import run_report_cli

    return run_report_cli(args)


if __name__ == "__main__":
    raise SystemExit(main())
