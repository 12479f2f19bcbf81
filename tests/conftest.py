"""Shared test helpers: where ../shared/testvectors lives, and float64 defaults."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TESTVECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "testvectors"


def meta(name: str) -> dict:
    """The JSON description of a test-vector network."""
    return json.loads((TESTVECTORS / f"{name}.json").read_text())


def small_config(name: str, tag: str = "256bins") -> dict:
    """The small network's official-schema config (UNetVDM: the 256- or 16-bin setting)."""
    info = meta(name)
    return info["settings"][tag]["small_config_bfn_schema"] if "settings" in info else info["small_config_bfn_schema"]


@pytest.fixture
def testvectors() -> Path:
    if not (TESTVECTORS / "README.md").exists():
        pytest.skip(f"reference test vectors not found at {TESTVECTORS} (they live in ../shared/testvectors)")
    return TESTVECTORS


# The tests use small tensors: one thread avoids oversubscribing CI's 2 cores (10-50x slowdowns seen
# when two test processes each used two threads).
import torch  # noqa: E402

torch.set_num_threads(1)
