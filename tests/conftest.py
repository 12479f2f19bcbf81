"""Shared test helpers: where ../shared/testvectors lives, and float64 defaults."""
from __future__ import annotations

from pathlib import Path

import pytest

TESTVECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "testvectors"


@pytest.fixture
def testvectors() -> Path:
    if not (TESTVECTORS / "README.md").exists():
        pytest.skip(f"reference test vectors not found at {TESTVECTORS} (they live in ../shared/testvectors)")
    return TESTVECTORS


# The tests use small tensors: one thread avoids oversubscribing CI's 2 cores (10-50x slowdowns seen
# when two test processes each used two threads).
import torch  # noqa: E402

torch.set_num_threads(1)
