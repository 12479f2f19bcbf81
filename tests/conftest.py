"""Fixtures (the vendored test vectors) and one torch thread; the shared helpers are in helpers.py, the toy
problems in problems.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import TESTVECTORS


@pytest.fixture
def testvectors() -> Path:
    """The vendored test-vector folder (part of the repository: a missing file is a failure, not a skip)."""
    return TESTVECTORS


# The tests use small tensors: one thread avoids oversubscribing CI's 2 cores (10-50x slowdowns seen
# when two test processes each used two threads).
import torch  # noqa: E402

torch.set_num_threads(1)
