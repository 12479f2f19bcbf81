"""Smoke run of benchmarks/overhead.py --quick (what benchmarks/gpu.sh runs on a GPU): it runs end to end on
CPU and writes both tables, and its hand loops compute the library's numbers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_overhead_quick_smoke(tmp_path):
    out = tmp_path / "overhead.md"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--quick", "--networks", "--batches", "1",
                    "--threads", "1", "--out", str(out)], check=True, cwd=ROOT, timeout=120, capture_output=True)
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 2 + 1 + 2 + 1, text               # 2 solver rows + header, 2 network rows + header
    for line in rows[1:3]:                                # the hand loop is the same update
        assert float(line.split("|")[-2]) < 1e-5, line
    assert "cifar10-continuous-256" in text and "text8-discrete" in text


def test_gpu_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu.sh")], check=True, timeout=30)
