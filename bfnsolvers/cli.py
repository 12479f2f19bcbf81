"""Command line: ``bfnsolvers sample | solvers | train | sweep | report``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .schedules import SCHEDULES

DEFAULT_CHECKPOINT = "digits-continuous"


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="shipped name, .safetensors or .pt path")
    parser.add_argument("--config", default=None, help="preset name or official YAML config (official checkpoints)")
    parser.add_argument("--solver", default=None, help="registered solver (default: the best measured for the data type)")
    parser.add_argument("--nfe", type=int, default=10, help="network calls")
    parser.add_argument("--schedule", default=None, choices=list(SCHEDULES))
    parser.add_argument("--t-start", type=float, default=None, help="first grid time (default: the solver's)")
    parser.add_argument("--final", default=None, choices=["denoise", "state", "drop"])
    parser.add_argument("-n", "--num-samples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="samples.png", help="PNG grid for image checkpoints")


def run_sample(args: argparse.Namespace) -> int:
    from .checkpoints import load_checkpoint
    from .sampling import sample

    model, process = load_checkpoint(args.checkpoint, args.config)
    model = model.to(args.device)
    shape = (args.num_samples,) + tuple(model.data_shape[:-1] if hasattr(process, "num_classes") else model.data_shape)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    with torch.no_grad():
        x, info = sample(model, process, args.solver, args.nfe, args.schedule, shape, t_start=args.t_start,
                         final=args.final, generator=generator, device=args.device)
    print(f"checkpoint {args.checkpoint}  solver {info.solver}  schedule {info.schedule}  "
          f"NFE {info.nfe}  wall time {info.wall_time:.2f} s  samples {args.num_samples}")
    if hasattr(process, "num_classes") and x.dim() == 2:
        from .data import tokens_to_text
        for line in tokens_to_text(x.cpu()):
            print(repr(line))
    else:
        save_grid(x.cpu(), Path(args.out))
        print(f"wrote {args.out}")
    return 0


def save_grid(images: torch.Tensor, path: Path) -> None:
    """Save (B, H, W, C) images in [-1, 1] as a square PNG grid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b, h, w, c = images.shape
    cols = int(b ** 0.5 + 0.999)
    rows = (b + cols - 1) // cols
    grid = torch.ones(rows * (h + 1), cols * (w + 1), c)
    for i, img in enumerate(((images.clamp(-1, 1) + 1) / 2)):
        r, q = divmod(i, cols)
        grid[r * (h + 1): r * (h + 1) + h, q * (w + 1): q * (w + 1) + w] = img
    plt.imsave(path, grid.squeeze(-1).numpy(), cmap="gray" if c == 1 else None, vmin=0, vmax=1)


def run_solvers(args: argparse.Namespace) -> int:
    from .solvers import SOLVERS
    for spec in SOLVERS.values():
        print(f"{spec.name:20s} order {spec.order}  {spec.kind.upper()}  {','.join(spec.data):34s} {spec.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .report import add_report_arguments, run_report_cli
    from .sweep import add_sweep_arguments, run_sweep_cli
    from .train import add_train_arguments, run_train

    parser = argparse.ArgumentParser(prog="bfnsolvers", description="Fast samplers for Bayesian Flow Networks")
    sub = parser.add_subparsers(dest="command")
    add_sample_arguments(sub.add_parser("sample", help="sample a checkpoint (default: the shipped digits model)"))
    sub.add_parser("solvers", help="list the registered solvers")
    add_train_arguments(sub.add_parser("train", help="train a small BFN from a recipe"))
    add_sweep_arguments(sub.add_parser("sweep", help="NFE-vs-quality sweep (resumable)"))
    add_report_arguments(sub.add_parser("report", help="render a sweep directory as markdown + PNG"))
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["sample", *argv]  # no subcommand: the main job, `bfnsolvers sample [options]`
    args = parser.parse_args(argv)
    command = args.command
    handlers = {"sample": run_sample, "solvers": run_solvers, "train": run_train, "sweep": run_sweep_cli,
                "report": run_report_cli}
    result = handlers[command](args)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
