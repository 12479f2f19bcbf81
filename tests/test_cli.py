"""The command line: the main job, schedules, output files, one-line user errors, help, progress."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bfnsolvers.cli import LazyProgress, main, parse_schedule

ROOT = Path(__file__).resolve().parents[1]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_main_job_writes_a_readable_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--nfe", "4", "-n", "4", "--no-progress"]) == 0  # no subcommand: sample
    out = capsys.readouterr().out
    assert "checkpoint digits-continuous" in out and "NFE 4" in out and "wrote samples.png" in out
    width, height = _png_size(tmp_path / "samples.png")
    assert width == height >= 2 * 64  # a 2 x 2 grid of 8x8 digits, each upscaled to >= 64 px


def test_save_grid_upscales_nearest_neighbour(tmp_path: Path) -> None:
    import matplotlib.image

    from bfnsolvers.cli import save_grid

    images = torch.full((1, 8, 8, 1), -1.0)
    images[0, 0, 0, 0] = 1.0  # one white pixel in the corner of a black digit
    save_grid(images, tmp_path / "g.png")
    grid = matplotlib.image.imread(tmp_path / "g.png")[..., 0]
    assert grid.shape == (80, 80)  # (8 + 2 border) x 8
    assert (grid[8:16, 8:16] == 1).all() and (grid[16:72, 16:72] == 0).all()


def test_schedule_accepts_names_times_and_calibrated() -> None:
    assert parse_schedule("logsnr") == "logsnr"
    assert parse_schedule("calibrated") == "calibrated"
    assert parse_schedule("0.001,0.3,0.7,1") == [0.001, 0.3, 0.7, 1.0]
    for bad in ("foo", "0.5,0.2", "0.1,nan", "0.1,2", "0.5"):
        with pytest.raises(Exception, match="got"):
            parse_schedule(bad)


def test_schedule_list_of_times(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["sample", "--schedule", "0.001,0.3,0.7,1", "--solver", "bfn-solver++2", "--final", "state", "-n", "2",
            "--out", str(tmp_path / "s.png"), "--no-progress"]
    assert main(args) == 0
    assert "NFE 3" in capsys.readouterr().out  # 3 steps, final "state": no extra call
    assert main(args[:2] + ["0.5,0.2"] + args[3:]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bfnsolvers: error: argument --schedule") and err.count("\n") == 1


def test_calibrated_schedule(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import bfnsolvers.calibrate as calibrate

    calls = []
    real = calibrate.speed_profile

    def spy(*args, **kwargs):
        calls.append(kwargs.get("progress"))
        return real(*args, **kwargs)

    monkeypatch.setattr(calibrate, "speed_profile", spy)
    assert main(["sample", "--schedule", "calibrated", "--nfe", "6", "-n", "2", "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "schedule calibrated" in out and "NFE 6" in out and "solver bfn-unipc3 " in out
    assert len(calls) == 1 and callable(calls[0])  # the pilot ran once, with a progress callback


def test_speed_profile_reports_progress() -> None:
    from bfnsolvers.calibrate import speed_profile
    from bfnsolvers.oracles import oracle_problem

    oracle, process = oracle_problem("gmm")
    seen: list[tuple[int, int]] = []
    speed_profile(oracle, process, (4, oracle.dim), 1e-3, steps=8, progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (8, 8) and len(seen) >= 8 and all(n == 8 for _, n in seen)
    with pytest.raises(ValueError, match="progress"):
        speed_profile(oracle, process, (4, oracle.dim), 1e-3, steps=8, progress=3)


def test_text_checkpoint_writes_txt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--checkpoint", "text-discrete", "-n", "3", "--nfe", "4", "--no-progress"]) == 0
    lines = (tmp_path / "samples.txt").read_text().splitlines()
    assert len(lines) == 3 and all(len(line) == 64 for line in lines)
    assert main(["--checkpoint", "text-discrete", "-n", "2", "--nfe", "4", "--out", "mine.txt", "--no-progress"]) == 0
    assert len((tmp_path / "mine.txt").read_text().splitlines()) == 2
    assert "wrote mine.txt" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["sample", "--checkpoint", "no-such-model"], "no such checkpoint"),
    (["sample", "--nfe", "1", "--solver", "bfn"], "nfe must be at least"),  # raised deep inside sample()
    (["sample", "--solver", "no-such-solver"], "solver"),
    (["sample", "--nfe", "0"], "argument --nfe"),
    (["sample", "--t-start", "nan"], "argument --t-start"),
    (["sample", "--seed", str(2 ** 70)], "argument --seed"),
    (["sample", "--device", "cuda:7"], "device"),
    (["sample", "--out", "{tmp}/missing/dir/s.png", "-n", "1", "--nfe", "4"], "No such file or directory"),
    (["sample", "--checkpoint", "{tmp}/corrupt.safetensors"], "cannot read"),  # CheckpointError
    (["solvers", "extra"], "unrecognized arguments"),
    (["train", "--recipe", "nope"], "argument --recipe"),
    (["sweep", "--checkpoint", "oracle:nope", "--solvers", "bfn", "--out", "{tmp}/s"], "unknown oracle"),
    (["report", "{tmp}/empty"], "no results.jsonl"),
    (["nope"], "invalid choice"),
])
def test_user_errors_are_one_line_exit_2(argv: list[str], match: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "corrupt.safetensors").write_bytes(b"not a checkpoint")
    (tmp_path / "empty").mkdir()
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bfnsolvers: error: ") and err.count("\n") == 1, err
    assert match in err, err
    assert "Traceback" not in err


def test_debug_shows_the_traceback() -> None:
    with pytest.raises(ValueError, match="nfe must be at least"):
        main(["sample", "--nfe", "1", "--solver", "bfn", "--debug"])


def test_help_shows_defaults(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 10;" in out and "(default: digits-continuous)" in out and "(default: 64)" in out
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert "(default: 2000)" in " ".join(capsys.readouterr().out.split())


def test_exit_code_of_the_process() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "bfnsolvers.cli", "--checkpoint", "no-such-model"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("bfnsolvers: error: ") and proc.stderr.count("\n") == 1, proc.stderr


def test_progress_appears_only_after_the_delay() -> None:
    from rich.console import Console

    buffer = io.StringIO()
    with LazyProgress("sampling", 10, delay=3600, console=Console(file=buffer, force_terminal=True)) as bar:
        bar.update(5)
    assert buffer.getvalue() == ""
    with LazyProgress("sampling", 10, delay=0, console=Console(file=buffer, force_terminal=True)) as bar:
        bar.update(5)
        bar.update(10)
    assert "sampling" in buffer.getvalue() and "10/10" in buffer.getvalue()


def test_beyond_help_prints_help() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.beyond", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: python -m benchmarks.beyond") and "calibration" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "benchmarks.beyond", "no-such-problem"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "expected oracle problems" in proc.stderr
