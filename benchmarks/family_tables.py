"""What the oracle-family benchmarks share: noise floors, ratios to them, per-member summaries, results files.

A member's noise floor for a metric is the median of that metric over independent exact sample sets of the size
scored (``noise_floor``): the metric's value when nothing is wrong but the sampling noise. A score is the metric
of a sampler (mean over sample sets) divided by the floor: 1 = indistinguishable from exact samples.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["append_row", "fraction", "geometric_mean", "median_worst", "noise_floor", "read_rows"]


def noise_floor(values: Iterable[float]) -> float:
    """The median of a metric over exact sample sets (robust to the heavy tails of single pairs)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values must hold at least one exact set's metric")
    return statistics.median(values)


def geometric_mean(values: Sequence[float]) -> float:
    """(prod v)^(1/n) of positive values: a score over metrics on ratio scales, no metric weighs more."""
    if not values or any(not v > 0 for v in values):
        raise ValueError(f"values must be a non-empty sequence of positive numbers, got {values!r}")
    return math.exp(sum(math.log(v) for v in values) / len(values))


def median_worst(values: Iterable[float | None]) -> tuple[float, float] | None:
    """(median, max) of the values that are there (None left out); None if none are."""
    values = [v for v in values if v is not None]
    return (statistics.median(values), max(values)) if values else None


def fraction(flags: Iterable[bool | None]) -> str:
    """"k/n": how many of the decided flags (None left out) are true."""
    flags = [f for f in flags if f is not None]
    return f"{sum(bool(f) for f in flags)}/{len(flags)}"


def read_rows(path: Path) -> list[dict]:
    """The JSON lines of a results file ([] if there is none)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def append_row(f, row: dict, rows: list[dict]) -> None:
    """Write one JSON line now (a cut-off run keeps what it measured) and keep it in ``rows``."""
    f.write(json.dumps(row) + "\n")
    f.flush()
    rows.append(row)
