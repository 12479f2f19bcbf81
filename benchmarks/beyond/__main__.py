"""``python -m benchmarks.beyond [PROBLEM ...] | models [NAME ...] | plateau [PROBLEM ...] | trajectory | chains |
calibration``: the front door of the experiments (see the package docstring)."""
from __future__ import annotations

import argparse
import sys

import torch

from . import __doc__ as DOC
from . import calibration, chains, models, oracles, plateau, trajectory

COMMANDS = ("models", "trajectory", "chains", "calibration", "plateau")
PROBLEMS = ("gmm", "discretised", "markov")


def parse_args(argv: list[str] | None = None) -> list[str]:
    """The command and its arguments, checked."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.beyond", description=DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="*", metavar="COMMAND_OR_PROBLEM",
                        help=f"oracle problems (gmm, discretised, markov; default: gmm markov), or one of {COMMANDS} "
                             "followed by its arguments (models: checkpoint names; plateau: problems)")
    what = parser.parse_args(argv).what
    head, rest = (what[0], what[1:]) if what and what[0] in COMMANDS else (None, what)
    if head in ("trajectory", "chains", "calibration") and rest:
        parser.error(f"{head} takes no arguments, got {rest}")
    if head == "models" and any(n not in models.MODELS for n in rest):
        parser.error(f"models: expected checkpoint names among {list(models.MODELS)}, got {rest}")
    if head in (None, "plateau") and any(p not in PROBLEMS for p in rest):
        parser.error(f"expected oracle problems among {PROBLEMS} or a command among {COMMANDS}, got {what}")
    return what


def main(argv: list[str] | None = None) -> int:
    what = parse_args(argv)
    torch.set_num_threads(1)
    head, rest = (what[0], what[1:]) if what else (None, [])
    if head == "models":
        models.models(rest or list(models.MODELS))
    elif head == "trajectory":
        trajectory.trajectory()
    elif head == "chains":
        chains.chains()
    elif head == "calibration":
        calibration.calibration()
    elif head == "plateau":
        for problem in rest or ["gmm", "discretised"]:
            plateau.plateau(problem)
    else:
        oracles.run(what or ["gmm", "markov"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
