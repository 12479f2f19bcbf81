"""Packaging: the wheel carries its checkpoints and samples from outside the source tree;
an install without triton samples (the kernels fall back to torch); pyproject stays honest."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BFNSOLVERS_KERNELS", "TRITON_INTERPRET")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def test_pyproject_lists_every_package() -> None:
    """The explicit package list (needed for the checkpoint mapping) misses no package of the tree."""
    pyproject = _pyproject()
    mapped = {folder: package for package, folder in pyproject["tool"]["setuptools"]["package-dir"].items()}
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("bfnsolvers", "kernels")
             for p in (ROOT / top).rglob("__init__.py")}
    found = {mapped.get(name.split(".")[0], name.split(".")[0]) + name[len(name.split(".")[0]):] for name in found}
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    assert found <= listed, f"packages missing from pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
    assert pyproject["tool"]["setuptools"]["package-dir"]["bfnsolvers._checkpoints"] == "checkpoints"
    assert pyproject["tool"]["setuptools"]["package-dir"]["bfnsolvers.kernels"] == "kernels"
    assert "kernels" not in listed, "the kernels install as bfnsolvers.kernels, never as a generic top-level name"


def test_dependencies_are_ranges_and_triton_is_optional() -> None:
    pyproject = _pyproject()
    deps = pyproject["project"]["dependencies"]
    assert not any("==" in d for d in deps), deps
    assert any(d.replace(" ", "").startswith("torch>=") for d in deps), deps
    assert not any(d.startswith("triton") for d in deps)
    assert pyproject["project"]["optional-dependencies"]["triton"] == ["triton>=3.0"]


NO_TRITON = """
import sys
sys.modules["triton"] = None          # as if triton were not installed: `import triton` raises ImportError
import torch, bfnsolvers
from bfnsolvers import kernels
assert not kernels.triton_available()
x = torch.zeros(2, 3)
assert kernels.resolve_backend(x) == "torch"
try:
    kernels.resolve_backend(x, "triton")
except RuntimeError as exc:
    assert "triton is not installed" in str(exc)
else:
    raise AssertionError("backend='triton' without triton must raise")
for name, solver, shape in (("digits-continuous", "bfn-solver++2", (4, 8, 8, 1)), ("text-discrete", "bfn", (2, 64))):
    model, process = bfnsolvers.load_checkpoint(name)
    out, info = bfnsolvers.sample(model, process, solver, 4, shape=shape, generator=torch.Generator().manual_seed(0))
    assert out.shape == shape and info.nfe == 4, (out.shape, info.nfe)
    assert out.float().isfinite().all()
assert sys.modules["triton"] is None
print("sampled without triton")
"""


def test_samples_without_triton() -> None:
    proc = subprocess.run([sys.executable, "-c", NO_TRITON], cwd=ROOT, env=_env(PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sampled without triton" in proc.stdout


def test_wheel_carries_checkpoints_and_samples_outside_the_tree(tmp_path: Path) -> None:
    """Build the wheel from a copy of the tree, unpack it as site-packages would, and run the main
    job (`bfnsolvers` with no arguments) from a folder with no source tree in it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("bfnsolvers", "kernels", "checkpoints"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    dist = tmp_path / "dist"
    build = ("import sys, setuptools.build_meta as b; "
             "print(b.build_wheel(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", build, str(dist)], cwd=src, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel = dist / proc.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(wheel).namelist()
    for ckpt in ("digits-continuous", "digits-discretised", "text-discrete", "digits-classifier"):
        assert f"bfnsolvers/_checkpoints/{ckpt}.safetensors" in names, names
    assert "bfnsolvers/kernels/dispatch.py" in names and "bfnsolvers/py.typed" in names
    assert "bfnsolvers/kernels/triton_kernels.py" in names and not any(n.startswith("kernels/") for n in names), names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    probe = ("import importlib.util, bfnsolvers.kernels as k; print(k.__file__); "
             "print(importlib.util.find_spec('kernels'))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=work, env=_env(PYTHONPATH=str(site)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kernels_file, generic = proc.stdout.splitlines()[:2]
    assert Path(kernels_file).resolve() == (site / "bfnsolvers" / "kernels" / "__init__.py").resolve(), kernels_file
    assert generic == "None", f"`import kernels` must not resolve to this project from the wheel: {generic}"
    job = ("import sys, bfnsolvers, bfnsolvers.checkpoints as c; from bfnsolvers.cli import main; "
           "print(bfnsolvers.__file__); print(c.SHIPPED_DIR); sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", job, "--nfe", "4", "-n", "4"], cwd=work,
                          env=_env(PYTHONPATH=str(site)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, shipped = proc.stdout.splitlines()[:2]
    assert Path(first).resolve().is_relative_to(site.resolve()), first
    assert Path(shipped).resolve() == (site / "bfnsolvers" / "_checkpoints").resolve()
    assert (work / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
