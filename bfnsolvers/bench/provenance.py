"""Provenance of a sweep's lines: package versions and git commit, the machine, and a cell's peak memory."""
from __future__ import annotations

import functools
import os
import platform
import re
import resource
import subprocess
from pathlib import Path
from typing import Any

import torch

__all__ = ["PeakMemory", "machine", "proc_status_bytes", "versions"]


@functools.lru_cache(maxsize=1)
def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("bfnsolvers", "torch", "numpy", "scipy", "matplotlib", "rich", "triton"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bfnsolvers"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            out["bfnsolvers_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(device: torch.device, world_size: int) -> dict:
    info = {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "world_size": world_size, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class PeakMemory:
    """Peak memory of one cell on this rank: CUDA max allocated, else the peak RSS increase."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            self.kind = "cuda max_memory_allocated during the cell minus memory_allocated at its start"
        elif self._reset_hwm():
            self.base = self._status("VmRSS")
            self.kind = "peak RSS increase: Linux VmHWM (reset per cell via /proc/self/clear_refs) minus VmRSS at cell start"
        else:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.kind = "ru_maxrss increase during the cell (0 if it stayed below an earlier peak)"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        elif self.kind.startswith("peak RSS"):
            self.peak = self._status("VmHWM") - self.base
        else:
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base
        self.peak = max(int(self.peak), 0)

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _status(field_name: str) -> int:
        return proc_status_bytes(field_name)


def proc_status_bytes(field_name: str) -> int:
    """A memory field of Linux ``/proc/self/status`` (VmRSS, VmHWM, ...) in bytes."""
    match = re.search(rf"{field_name}:\s+(\d+)", Path("/proc/self/status").read_text())
    if match is None:
        raise RuntimeError(f"{field_name} not in /proc/self/status")
    return int(match.group(1)) * 1024
