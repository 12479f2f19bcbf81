"""What the experiments share: the NFEs, the pilot profile of calibrated grids, calibrated sweeps, means over
seeds, and writing a markdown file."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from bfnsolvers.bench import run_sweep
from bfnsolvers.calibrate import calibrated_times, speed_profile
from bfnsolvers.defaults import PUBLISHED_ETA

NFES = [4, 5, 6, 8, 10, 15, 20]
#: Our discrete solvers on grids calibrated to the model (bfnsolvers.calibrate), final call at t = 1.
CALIBRATED = ["bfn-unipc3-t", "sde-bfn-unipc3-t"]


def mean_tuples(rows: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """Element-wise mean of equal-length score tuples."""
    return tuple(sum(r[i] for r in rows) / len(rows) for i in range(len(rows[0])))


def mean_over_seeds(draw: Callable[[int], torch.Tensor], score: Callable[[torch.Tensor], Sequence[float]],
                    seeds: Sequence[int]) -> tuple[float, ...]:
    """The mean over ``seeds`` of ``score(draw(seed))`` (a tuple of metrics)."""
    return mean_tuples([score(draw(s)) for s in seeds])


def write_md(path: str | Path, lines: Sequence[str], *, newline: bool = True) -> None:
    """Write the lines of a markdown file (closing it; ``newline``: end with a line break)."""
    Path(path).write_text("\n".join(lines) + ("\n" if newline else ""))


def pilot_profile(model, process, shape: tuple[int, ...], pilot: int = 200):
    """The speed profile that calibrated grids come from: ``pilot`` start states (seed 7, apart from every
    scored sample) at the published discrete eta."""
    return speed_profile(model, process, (pilot,) + shape, PUBLISHED_ETA["discrete"],
                         generator=torch.Generator().manual_seed(7))


def calibrated(target: str, model, process, shape: tuple[int, ...], samples: int, seeds: list[int], batch_size: int,
               pilot: int = 200) -> None:
    """One sweep per NFE (the grid depends on it) on a grid from a pilot run of ``pilot`` start states (seed 7,
    apart from the scored samples) from the published eta."""
    profile = pilot_profile(model, process, shape, pilot)
    out = f"benchmarks/results/beyond-{target.removeprefix('oracle:')}"
    for nfe in NFES:
        config = {"name": "calibrated-denoise", "schedule": calibrated_times(profile, nfe - 1).tolist(), "final": "denoise"}
        run_sweep(target, CALIBRATED, [nfe], samples, seeds, out, extra_configs=[config], batch_size=batch_size)
