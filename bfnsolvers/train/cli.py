"""``bfnsolvers train``: its arguments and runner."""
from __future__ import annotations

import argparse

import torch

from .config import RECIPES, get_recipe
from .loop import train


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``bfnsolvers train`` (use with :func:`run_train`)."""
    parser.add_argument("--recipe", required=True, choices=RECIPES, help="shipped recipe to train")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--out", default="checkpoints", help="folder of the exported <name>.safetensors")
    parser.add_argument("--state-dir", default="out/train", help="folder of the training state and JSONL log")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--name", default=None, help="file name (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a state file exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar / periodic lines")
    return parser


def run_train(args: argparse.Namespace) -> dict:
    """Run ``bfnsolvers train`` from parsed :func:`add_train_arguments` arguments."""
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr),
                                   ("seed", args.seed), ("name", args.name)) if v is not None}
    config = get_recipe(args.recipe, **overrides)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"threads: expected a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    result = train(config, args.out, args.state_dir, resume=not args.no_resume, progress=not args.no_progress,
                   device=args.device)
    print(f"{config.name}: step {result['step']}/{config.steps}, {result['elapsed_s']:.0f} s of training, "
          f"export {result['export']}", flush=True)
    return result
