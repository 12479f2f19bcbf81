"""The command-line faces of the bench: ``bfnsolvers sweep`` and ``bfnsolvers report`` (arguments and runners)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..defaults import FINALS, READOUTS, data_kind
from ..schedules import parse_schedule
from ..solvers import SOLVERS
from .report import REPORT_FILE, render_report
from .results import results_path
from .sweep import DTYPES, run_sweep
from .targets import ORACLE_PREFIX, resolve_target

__all__ = ["add_report_arguments", "add_sweep_arguments", "run_report_cli", "run_sweep_cli"]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _sweep_schedule(text: str) -> str | list[float]:
    """--schedule of a sweep: a named grid or a comma list of times ("calibrated" is per model: not in sweeps)."""
    value = parse_schedule(text)
    if value == "calibrated":
        raise argparse.ArgumentTypeError("'calibrated' is not available in sweeps; pass the calibrated times as a "
                                         "comma-separated list")
    return value


def _json_config(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--extra-config must be a JSON object: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise argparse.ArgumentTypeError(f"--extra-config must be a JSON object with a 'name', got {text!r}")
    return value


def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``bfnsolvers sweep``."""
    parser.add_argument("--checkpoint", "--target", dest="target", required=True,
                        help="oracle:gmm | oracle:discretised | oracle:markov, or a checkpoint name or path")
    parser.add_argument("--config", default=None, help="checkpoint config (preset name or YAML) for load_checkpoint")
    parser.add_argument("--solvers", default="all",
                        help="comma-separated registered solvers, or 'all' (every solver for the data type except reference)")
    parser.add_argument("--nfe", type=_int_list, default=[5, 10, 20, 50, 100, 200, 1000], help="comma-separated NFEs")
    parser.add_argument("--samples", type=int, default=2000, help="samples per cell")
    parser.add_argument("--seed", type=_int_list, default=[0], help="seed or comma-separated seeds")
    parser.add_argument("--out", required=True, help="output folder (results.jsonl; re-runs resume)")
    parser.add_argument("--schedule", default=None, type=_sweep_schedule,
                        help="time grid: uniform | logsnr | quadratic | quadratic-start, or comma-separated BFN times "
                             "(default: sample()'s)")
    parser.add_argument("--final", default=None, choices=FINALS, help="last step (default: sample()'s)")
    parser.add_argument("--t-start", type=float, default=None, help="first grid time (default: per solver)")
    parser.add_argument("--readout", default=None, choices=READOUTS, help="final readout")
    parser.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="sampling dtype (default: sample()'s)")
    parser.add_argument("--extra-config", action="append", type=_json_config, default=[], metavar="JSON",
                        help='additional config besides the default one, e.g. \'{"name": "uniform", "schedule": '
                             '"uniform", "solvers": ["bfn"]}\' (repeatable)')
    parser.add_argument("--batch-size", type=int, default=1000, help="samples per sample() call (bounds memory)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before sampling")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    parser.add_argument("--report", action="store_true", help="render report.md and the PNGs when done")
    parser.add_argument("--allow-errors", action="store_true",
                        help="exit 0 even if some cells recorded errors (e.g. an NFE a solver cannot spend); "
                             "by default such a sweep exits 1")
    return parser


def _all_solvers(target: str) -> list[str]:
    """Every registered solver except ``reference`` that supports the target's data type."""
    tgt_kind = None
    if target.startswith(ORACLE_PREFIX):
        tgt_kind = {"gmm": "continuous", "discretised": "discretised", "markov": "discrete"}.get(target[len(ORACLE_PREFIX):])
    if tgt_kind is None:
        tgt_kind = data_kind(resolve_target(target).process)
    return [name for name, spec in SOLVERS.items() if name != "reference" and tgt_kind in spec.data]


def _command_line() -> str:
    import shlex

    prog = Path(sys.argv[0]).name
    prog = "python -m bfnsolvers" if prog == "__main__.py" else prog
    return " ".join([prog, shlex.join(sys.argv[1:])])


def run_sweep_cli(args: argparse.Namespace) -> int:
    """``bfnsolvers sweep``: run the sweep (resuming), optionally render the report; returns an exit code."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    solvers = _all_solvers(args.target) if args.solvers == "all" else [s for s in args.solvers.split(",") if s]
    records = run_sweep(args.target, solvers, args.nfe, args.samples, args.seed, args.out, schedule=args.schedule,
                        final=args.final, progress=not args.no_progress, batch_size=args.batch_size,
                        extra_configs=[{"name": "default"}, *args.extra_config] if args.extra_config else None,
                        t_start=args.t_start, readout=args.readout, dtype=args.dtype, device=args.device,
                        config=args.config, command=_command_line())
    bad = [r for r in records if r.get("status") != "ok"]
    print(f"{len(records)} cells in {results_path(args.out)} ({len(bad)} with errors)")
    if args.report and records:
        render_report(args.out)
        print(f"report: {Path(args.out) / REPORT_FILE}")
    if bad:
        first = bad[0]
        print(f"bfnsolvers sweep: {len(bad)} of {len(records)} cells failed; first: {first.get('solver')} "
              f"NFE {first.get('nfe')} seed {first.get('seed')} [{first.get('config_name', 'default')}]: "
              f"{first.get('error', 'no metrics')}", file=sys.stderr)
        return 0 if args.allow_errors else 1
    return 0


def add_report_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``bfnsolvers report``."""
    parser.add_argument("dir", help="sweep output folder (with results.jsonl)")
    parser.add_argument("--baseline", default=None,
                        help="comma-separated rows the speedups are measured against (a solver, or 'solver [config]'); "
                             "default: bfn under each of its configs")
    parser.add_argument("--reference-nfe", type=int, default=1000,
                        help="baseline NFE whose quality is to be matched (default 1000, else the largest)")
    return parser


def run_report_cli(args: argparse.Namespace) -> int:
    """``bfnsolvers report DIR``: write DIR/report.md and the PNGs; returns an exit code."""
    baseline = None if args.baseline is None else [b.strip() for b in args.baseline.split(",") if b.strip()]
    render_report(args.dir, baseline=baseline, reference_nfe=args.reference_nfe)
    print(f"report: {Path(args.dir) / REPORT_FILE}")
    return 0
