"""Sweeps: crash/resume, multi-process equals one process, report table/PNG/speedup, targets."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from bfnsolvers.processes import ContinuousBFN, DiscreteBFN
from bfnsolvers.bench import RESULTS_FILE, batch_seed, read_results, render_report, resolve_target, run_sweep, speedups

ROOT = Path(__file__).resolve().parents[1]




def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines()]


# --------------------------------------------------------------------------- crash and resume


def test_killed_sweep_resumes_with_every_cell_once(tmp_path: Path) -> None:
    solvers, nfes, seeds = ["bfn", "bfn-solver++1", "bfn-solver++2"], [10, 20, 30, 40, 50, 60], [0, 1]
    cmd = [sys.executable, "-m", "bfnsolvers", "sweep", "--checkpoint", "oracle:gmm", "--solvers", ",".join(solvers),
           "--nfe", ",".join(map(str, nfes)), "--samples", "64", "--batch-size", "32", "--seed", "0,1",
           "--out", str(tmp_path), "--no-progress", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results, deadline = tmp_path / RESULTS_FILE, time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and results.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"sweep ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    total = len(solvers) * len(nfes) * len(seeds)
    written = len(read_results(tmp_path))
    assert 3 <= written < total
    with open(results, "ab") as f:  # a torn write: the crash hit in the middle of a line
        f.write(b'{"key": "torn", "status": "ok", "metr')
    records = run_sweep("oracle:gmm", solvers, nfes, 64, seeds, tmp_path, batch_size=32, progress=False)
    lines = _lines(tmp_path)  # every line parses: the torn tail was cut before appending
    assert len(lines) == len(records) == total
    keys = [(r["solver"], r["nfe"], r["seed"]) for r in lines]
    assert sorted(keys) == sorted((s, n, e) for s in solvers for n in nfes for e in seeds)
    assert len({r["key"] for r in lines}) == total
    assert all(r["status"] == "ok" and r["nfe_spent"] == r["nfe"] for r in lines)
    # a third run has nothing left to do
    run_sweep("oracle:gmm", solvers, nfes, 64, seeds, tmp_path, batch_size=32, progress=False)
    assert len(_lines(tmp_path)) == total


# --------------------------------------------------------------------------- two processes


def _worker(rank: int, world: int, init_file: str, runs: list[dict]) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        for kwargs in runs:
            run_sweep(**kwargs, progress=False)
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_process(tmp_path: Path) -> None:
    runs = [dict(target=target, solvers=["bfn", "sde-bfn-solver++2", "bfn-solver++2"], nfes=[4, 8], samples=300,
                 seeds=[3], batch_size=64, out_dir=str(tmp_path / target[7:]))  # 5 batches: ranks get 3 and 2
            for target in ("oracle:markov", "oracle:gmm")]
    torch.multiprocessing.spawn(_worker, args=(2, str(tmp_path / "init"), runs), nprocs=2)
    for kwargs in runs:
        two = {r["key"]: r for r in _lines(Path(kwargs["out_dir"]))}
        one = run_sweep(**{**kwargs, "out_dir": tmp_path / "one"}, progress=False)
        one = [r for r in one if r["target"] == kwargs["target"]]
        assert len(one) == len(two) == 6
        for r in one:
            other = two[r["key"]]
            assert other["machine"]["world_size"] == 2 and r["machine"]["world_size"] == 1
            assert other["metrics"] == r["metrics"] and other["noise_floor"] == r["noise_floor"]
            assert len(other["memory"]["per_rank_bytes"]) == 2


def test_batch_seeds_do_not_depend_on_rank_count() -> None:
    assert batch_seed(0, 1) == batch_seed(0, 1) != batch_seed(0, 2) != batch_seed(1, 2)


# --------------------------------------------------------------------------- report


def _hand_made(out: Path) -> None:
    spec = {"q": {"label": "quality", "better": "lower", "log_scale": True},
            "acc": {"label": "accuracy", "better": "higher", "log_scale": False}}
    q = {"bfn": {10: 1.0, 100: 0.5, 1000: 0.2}, "fast": {10: 0.3, 100: 0.15, 1000: 0.1},
         "slow": {10: 2.0, 100: 1.0, 1000: 0.25}}
    acc = {"bfn": {10: 0.5, 100: 0.7, 1000: 0.9}, "fast": {10: 0.95, 100: 0.95, 1000: 0.95},
           "slow": {10: 0.1, 100: 0.2, 1000: 0.3}}
    lines = []
    for solver in q:
        for nfe in (10, 100, 1000):
            for seed, delta in ((0, -0.01), (1, 0.01)):
                lines.append({"key": f"{solver}-{nfe}-{seed}", "status": "ok", "target": "oracle:toy", "solver": solver,
                              "nfe": nfe, "nfe_spent": nfe, "seed": seed, "samples": 100, "primary_metric": "q",
                              "metric_spec": spec, "metrics": {"q": q[solver][nfe] + delta, "acc": acc[solver][nfe]},
                              "noise_floor": {"q": 0.05, "acc": 0.97}})
    lines.append({"key": "err", "status": "error", "target": "oracle:toy", "solver": "slow", "nfe": 5, "seed": 0,
                  "samples": 100, "error": "ValueError: nfe must be at least 6"})
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"partial": ')


def test_report_table_png_and_speedup(tmp_path: Path) -> None:
    _hand_made(tmp_path)
    records = read_results(tmp_path)
    ref, sp = speedups(records, "q", "bfn", 1000)
    assert ref == (1000, 1000, pytest.approx(0.2))
    assert (sp["fast"].nfe, sp["fast"].ratio) == (100, pytest.approx(10.0))
    assert (sp["bfn"].nfe, sp["bfn"].ratio) == (1000, pytest.approx(1.0))
    assert sp["slow"].nfe is None and sp["slow"].text() == (">1000", "<1x")
    _, sp_acc = speedups(records, "acc", "bfn", 1000)  # higher is better
    assert (sp_acc["fast"].nfe, sp_acc["fast"].ratio) == (10, pytest.approx(100.0))
    ref50, _ = speedups(records, "q", "bfn", 50)  # no NFE 50: the largest NFE is the reference
    assert ref50[0] == 1000

    md = render_report(tmp_path)
    assert md == (tmp_path / "report.md").read_text()
    assert "| solver | 5 | 10 | 100 | 1000 |" in md
    assert "| fast | 0.3 ± 0.01414 | 0.15 ± 0.01414 | 0.1 ± 0.01414 |" in md.replace("|  |", "|")
    assert "| fast | 100 | 10x |" in md and "| slow | >1000 | <1x |" in md
    assert "| *noise floor* | 0.05 |" in md and "err" in md
    for metric in ("q", "acc"):
        png = tmp_path / f"{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({metric}.png)" in md


def test_report_rejects_missing_results(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="out_dir"):
        render_report(tmp_path)


# --------------------------------------------------------------------------- validation and targets


@pytest.mark.parametrize("kwargs, match", [
    (dict(solvers=["no-such-solver"]), "solver must be one of"),
    (dict(nfes=[]), "nfes"),
    (dict(nfes=[10, 0]), "nfes"),
    (dict(nfes=[10, 10]), "nfes"),
    (dict(samples=1), "samples"),
    (dict(seeds=[-1]), "seeds"),
    (dict(target="oracle:nope"), "target"),
    (dict(target="no/such/checkpoint.pt"), "target"),
    (dict(solvers=["bfn-solver2-s"]), "do not support continuous"),
    (dict(extra_configs=[{"name": "a"}, {"name": "a"}]), "extra_configs"),
])
def test_bad_arguments_raise_value_error(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = dict(target="oracle:gmm", solvers=["bfn"], nfes=[5], samples=8, seeds=[0])
    with pytest.raises(ValueError, match=match):
        run_sweep(**{**args, **kwargs}, out_dir=tmp_path, progress=False)


def test_errors_and_extra_configs_are_recorded(tmp_path: Path) -> None:
    configs = [{"name": "default"}, {"name": "uniform", "schedule": "uniform", "solvers": ["bfn"]}]
    records = run_sweep("oracle:discretised", ["bfn", "bfn-solver++3"], [1, 6], 16, 0, tmp_path, batch_size=8,
                        extra_configs=configs, progress=False)
    by = {(r["solver"], r["config_name"], r["nfe"]): r for r in records}
    assert len(records) == 6
    assert by[("bfn", "default", 1)]["status"] == "error"  # NFE 1 cannot pay for a step plus the final call
    assert "nfe" in by[("bfn", "default", 1)]["error"]
    assert by[("bfn-solver++3", "default", 1)]["status"] == "ok"  # its default final step ("drop") needs no extra call
    ok = by[("bfn", "uniform", 6)]
    assert ok["status"] == "ok" and ok["config"]["schedule"] == "uniform" and ok["config"]["t_first"] == 0.0
    assert set(ok) >= {"metrics", "noise_floor", "timing", "memory", "versions", "machine", "config"}
    assert ok["timing"]["samples_per_s"] > 0 and ok["memory"]["kind"]
    md = render_report(tmp_path)
    assert "Speedup over `bfn [uniform]`" in md and "Speedup over `bfn`" in md


class _TinyEps(nn.Module):
    """A tiny random network on 8x8x1 images predicting eps."""

    output_type = "eps"
    data_shape = (8, 8, 1)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(65, 64)

    def forward(self, mu: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([mu.flatten(1), t.reshape(-1, 1).to(mu.dtype)], 1)
        return (0.1 * self.lin(h)).reshape(mu.shape)


class _TinyLogits(nn.Module):
    output_type = "logits"

    def __init__(self, length: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.data_shape = (length, 27)
        self.lin = nn.Linear(27, 27)

    def forward(self, theta: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.lin(theta)


def test_digits_metrics_with_a_tiny_random_network(tmp_path: Path) -> None:
    from bfnsolvers.metrics.images import DEFAULT_CLASSIFIER_PATH
    from bfnsolvers.bench.targets import _digits_target

    assert DEFAULT_CLASSIFIER_PATH.is_file(), f"digits classifier missing: {DEFAULT_CLASSIFIER_PATH}"
    target = _digits_target("tiny-digits", _TinyEps(), ContinuousBFN(0.02))
    (r,) = run_sweep(target, ["bfn-solver++2"], [4], 32, [0], tmp_path, batch_size=16, progress=False)
    assert r["status"] == "ok" and r["metrics"]["fd"] > r["noise_floor"]["fd"] > 0


def test_text_metrics_with_a_tiny_random_network(tmp_path: Path) -> None:
    pytest.importorskip("spellchecker")
    from bfnsolvers.bench.targets import _text_target

    target = _text_target("tiny-text", _TinyLogits(), DiscreteBFN(0.75 ** 2, 27), 16)
    (r,) = run_sweep(target, ["bfn"], [3], 8, [0], tmp_path, batch_size=8, progress=False)
    m, floor = r["metrics"], r["noise_floor"]
    assert set(m) == set(floor) == {"spelling_accuracy", "char_nll"}
    assert m["spelling_accuracy"] is None or 0 <= m["spelling_accuracy"] <= 1  # None: no complete word (nan)
    assert floor["spelling_accuracy"] > 0.5 and m["char_nll"] > floor["char_nll"] > 0


def test_shipped_checkpoint_target() -> None:
    target = resolve_target("digits-continuous")
    assert target.shape == (8, 8, 1) and target.primary == "fd"


# --------------------------------------------------------------------------- lock, validation, exit status, repair


def test_second_sweep_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    from bfnsolvers.bench.results import LOCK_FILE, SweepLockedError, FolderLock as _FolderLock

    held = _FolderLock(tmp_path)
    held.acquire()  # another process would hold it the same way (flock is per open file description)
    try:
        with pytest.raises(SweepLockedError, match="another sweep is running") as info:
            run_sweep("oracle:gmm", ["bfn"], [5], 8, [0], tmp_path, progress=False)
        assert str(tmp_path) in str(info.value) and LOCK_FILE in str(info.value)
        assert f"pid {os.getpid()}" in str(info.value)
        assert not (tmp_path / RESULTS_FILE).exists()  # no cell ran
    finally:
        held.release()
    (r,) = run_sweep("oracle:gmm", ["bfn"], [5], 8, [0], tmp_path, progress=False)  # free again
    assert r["status"] == "ok"


def test_lock_is_released_when_its_process_dies(tmp_path: Path) -> None:
    code = ("import sys, os; from pathlib import Path; from bfnsolvers.bench.results import FolderLock as _FolderLock; "
            "_FolderLock(Path(sys.argv[1])).acquire(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, check=True, timeout=120)
    (r,) = run_sweep("oracle:gmm", ["bfn"], [5], 8, [0], tmp_path, progress=False)
    assert r["status"] == "ok"


@pytest.mark.parametrize("kwargs, match", [
    (dict(schedule="foo"), "schedule: expected one of"),
    (dict(schedule=[0.5, 0.2]), "schedule"),
    (dict(t_start=float("nan")), "t_start: expected a finite number"),
    (dict(t_start=1.5), "t_start"),
    (dict(readout="median"), "readout"),
    (dict(extra_configs=[{"name": "x", "schedule": "nope"}]), r"schedule \(extra config 'x'\)"),
    (dict(out_dir=""), "out: expected a non-empty folder path"),
    (dict(schedule=[0.0, 0.5, 1.0], final="denoise"), r"nfe=5, but a schedule of 3 times.*spends 3 calls"),
])
def test_bad_sample_arguments_are_rejected_before_any_cell(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = dict(target="oracle:gmm", solvers=["bfn"], nfes=[5], samples=8, seeds=[0], out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match=match):
        run_sweep(**{**args, **kwargs}, progress=False)
    assert not (tmp_path / "o").exists()  # nothing ran, nothing was recorded


def test_out_dir_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        run_sweep("oracle:gmm", ["bfn"], [5], 8, [0], f, progress=False)


def test_cli_rejects_bad_arguments_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bfnsolvers.cli import main

    base = ["sweep", "--checkpoint", "oracle:gmm", "--solvers", "bfn", "--nfe", "5", "--samples", "8", "--no-progress"]
    for extra, match in ((["--schedule", "foo", "--out", str(tmp_path / "a")], "argument --schedule"),
                         (["--t-start", "nan", "--out", str(tmp_path / "b")], "t_start: expected a finite number"),
                         (["--out", ""], "out: expected a non-empty folder path")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("bfnsolvers: error: ") and match in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())


def test_failed_cells_make_the_cli_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bfnsolvers.cli import main

    args = ["sweep", "--checkpoint", "oracle:discretised", "--solvers", "bfn", "--nfe", "1,6", "--samples", "8",
            "--batch-size", "8", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 1  # NFE 1 cannot pay for a step plus the final call
    err = capsys.readouterr().err
    assert "1 of 2 cells failed" in err and "bfn NFE 1 seed 0" in err and "nfe" in err
    assert main(args + ["--allow-errors"]) == 0  # resumed: nothing left to run, the error stays recorded
    assert "1 of 2 cells failed" in capsys.readouterr().err
    ok = ["sweep", "--checkpoint", "oracle:discretised", "--solvers", "bfn", "--nfe", "6", "--samples", "8",
          "--batch-size", "8", "--out", str(tmp_path / "ok"), "--no-progress"]
    assert main(ok) == 0


def test_resume_repairs_corrupt_lines_atomically(tmp_path: Path) -> None:
    run_sweep("oracle:gmm", ["bfn"], [5, 6], 8, [0], tmp_path, batch_size=8, progress=False)
    path = tmp_path / RESULTS_FILE
    good = path.read_text().splitlines()
    assert len(good) == 2
    # a corrupt line in the middle, a non-object line, a blank line, a torn tail
    path.write_text(good[0] + "\n" + '{"key": "x", "stat\n' + "[1, 2]\n\n" + good[1] + "\n" + '{"key": "torn"')
    inode = path.stat().st_ino
    records = run_sweep("oracle:gmm", ["bfn"], [5, 6], 8, [0], tmp_path, batch_size=8, progress=False)
    assert len(records) == 2
    assert path.read_text().splitlines() == good  # rewritten without the bad lines, nothing re-run
    assert path.stat().st_ino != inode  # replaced (temporary file renamed over it), not edited in place
    assert not list(tmp_path.glob(".*.tmp"))


def test_rerun_failed_cell_replaces_its_line(tmp_path: Path) -> None:
    records = run_sweep("oracle:gmm", ["bfn"], [5, 6], 8, [0], tmp_path, batch_size=8, progress=False)
    path = tmp_path / RESULTS_FILE
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    failed_key = lines[0]["key"]
    lines[0] = {**lines[0], "status": "failed", "error": "MemoryError: pretend"}
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    records = run_sweep("oracle:gmm", ["bfn"], [5, 6], 8, [0], tmp_path, batch_size=8, progress=False)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == len(records) == 2
    assert [r["key"] for r in lines].count(failed_key) == 1
    assert all(r["status"] == "ok" for r in lines)


def test_duplicate_keys_are_merged_on_resume(tmp_path: Path) -> None:
    run_sweep("oracle:gmm", ["bfn"], [5], 8, [0], tmp_path, batch_size=8, progress=False)
    path = tmp_path / RESULTS_FILE
    line = path.read_text()
    path.write_text(line + line)
    assert len(read_results(tmp_path)) == 1
    run_sweep("oracle:gmm", ["bfn"], [5], 8, [0], tmp_path, batch_size=8, progress=False)
    assert path.read_text() == line


def test_unknown_solver_option_is_rejected_before_any_cell(tmp_path: Path) -> None:
    configs = [{"name": "typo", "lower_order_fnal": True}]
    with pytest.raises(ValueError, match=r"extra_configs\['typo'\]: bfn-solver\+\+2 takes no option \['lower_order_fnal'\]"):
        run_sweep("oracle:gmm", ["bfn-solver++2"], [5], 8, [0], tmp_path / "o", extra_configs=configs, progress=False)
    assert not (tmp_path / "o").exists()
    configs = [{"name": "ok", "lower_order_final": True}]
    (r,) = run_sweep("oracle:gmm", ["bfn-solver++2"], [5], 8, [0], tmp_path / "o", extra_configs=configs,
                     progress=False)
    assert r["status"] == "ok"
