"""Shared test helpers: the vendored reference test vectors (tests/data/testvectors) and one torch thread."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

#: The official-code reference vectors, vendored with the tests (see its README.md).
TESTVECTORS = Path(__file__).resolve().parent / "data" / "testvectors"


def meta(name: str) -> dict:
    """The JSON description of a test-vector network."""
    return json.loads((TESTVECTORS / f"{name}.json").read_text())


def small_config(name: str, tag: str = "256bins") -> dict:
    """The small network's official-schema config (UNetVDM: the 256- or 16-bin setting)."""
    info = meta(name)
    return info["settings"][tag]["small_config_bfn_schema"] if "settings" in info else info["small_config_bfn_schema"]


@pytest.fixture
def testvectors() -> Path:
    """The vendored test-vector folder (part of the repository: a missing file is a failure, not a skip)."""
    return TESTVECTORS


# The tests use small tensors: one thread avoids oversubscribing CI's 2 cores (10-50x slowdowns seen
# when two test processes each used two threads).
import torch  # noqa: E402

torch.set_num_threads(1)
