"""NFE-vs-quality sweeps: run solvers x NFEs x seeds on an oracle problem or a checkpoint.

``run_sweep`` writes one JSON line per finished cell to ``out_dir/results.jsonl``
(written whole, then flushed and fsynced). A re-run skips finished cells (status "ok",
or "error" for a deterministic failure such as too small an NFE; "failed" cells, out of
memory or an unexpected exception, are retried) and drops a trailing partial line, so a
crash loses at most the cell in flight. Samples are drawn in batches; batch ``b`` of
seed ``s`` always uses a generator seeded with :func:`batch_seed` ``(s, b)``, so the
sample set depends on the batch size but not on the number of ranks: under ``torchrun``
(``torch.distributed``; gloo on CPU, NCCL on GPU) rank ``r`` draws batches
``b = r, r + W, ...``; rank 0 gathers them in batch order, computes the metrics and
writes the lines. ``bfnsolvers.bench.report`` renders the results; ``targets``, ``results``, ``provenance`` and
``distributed`` hold the rest.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .._checks import is_int, is_real
from .._io import progress_bar
from ..defaults import FINALS, READOUTS, data_kind, resolve_defaults
from ..sampling import build_grid, sample
from ..schedules import SCHEDULES, check_times
from ..solvers import get_solver
from .distributed import Ranks, broadcast, gather, init_distributed
from .provenance import PeakMemory, machine, versions
from .results import FolderLock, SweepLockedError, read_results, results_path, write_record
from .targets import SweepTarget, hash_seed, resolve_target

__all__ = ["DTYPES", "SAMPLE_KEYS", "batch_seed", "run_sweep"]

#: Keys of an extra config that go to ``sample`` by name; any other key is a solver option.
SAMPLE_KEYS = ("schedule", "final", "t_start", "readout", "dtype")


def batch_seed(seed: int, batch: int) -> int:
    """Seed of the generator of batch ``batch`` (samples ``batch * B`` onwards) for ``seed``."""
    return hash_seed(f"bfnsolvers.sweep|batch|{seed}|{batch}")


@dataclass
class _Cell:
    solver: str
    nfe: int
    seed: int
    config_name: str
    sample_kwargs: dict
    options: dict
    key: str = ""
    config: dict = field(default_factory=dict)


def _sample_defaults() -> dict:
    params = inspect.signature(sample).parameters
    return {"schedule": params["schedule"].default, "final": params["final"].default,
            "readout": params["readout_as"].default, "dtype": params["dtype"].default}


DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _as_dtype(value: Any) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str) and value.removeprefix("torch.") in DTYPES:
        return DTYPES[value.removeprefix("torch.")]
    raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {value!r}")


def _validate_list(name: str, values: Any, kind: str) -> list:
    if isinstance(values, (str, int)) and not isinstance(values, bool):
        values = [values] if kind != "solvers" else [s for s in str(values).split(",") if s]
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a list, got {values!r}") from None
    if not values:
        raise ValueError(f"{name} must not be empty")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat values, got {values}")
    return values


def _check_out_dir(out_dir: Any) -> Path:
    """``out_dir`` as a Path: a non-empty path that is not an existing file."""
    if not isinstance(out_dir, (str, os.PathLike)) or not str(os.fspath(out_dir)).strip():
        raise ValueError(f"out: expected a non-empty folder path, got {out_dir!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {str(out)!r} exists and is not a folder")
    return out


def _check_sample_kwargs(kw: dict, where: str) -> None:
    """The sample() arguments of a cell, checked before any cell runs (``where``: the config named in errors)."""
    schedule = kw["schedule"]
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule{where}: expected one of {list(SCHEDULES)} or a list of times, got {schedule!r}")
    else:
        try:
            check_times(schedule)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"schedule{where}: expected a named grid or increasing times in [0, 1]: {exc}") from None
    t = kw["t_start"]
    if not (is_real(t) and 0 <= t < 1):
        raise ValueError(f"t_start{where}: expected a finite number in [0, 1), got {t!r}")
    if kw["final"] not in FINALS:
        raise ValueError(f"final{where}: expected 'denoise', 'state' or 'drop', got {kw['final']!r}")
    if kw["readout"] not in READOUTS:
        raise ValueError(f"readout{where}: expected one of {list(READOUTS)}, got {kw['readout']!r}")


def _check_solver_options(spec: Any, options: dict, config_name: str) -> None:
    """Options of an extra config that the solver's function does not take: a ValueError before any cell runs."""
    unknown = spec.unknown_options(options)
    if unknown:
        raise ValueError(f"extra_configs[{config_name!r}]: {spec.name} takes no option {unknown}; its options: "
                         f"{spec.option_names()}, and the sample() arguments {list(SAMPLE_KEYS)}")


def _plan_cells(target: SweepTarget, solvers: Sequence[str], nfes: Sequence[int], seeds: Sequence[int],
                samples: int, batch_size: int, base: dict, extra_configs: Sequence[dict] | None,
                device: torch.device) -> list[_Cell]:
    defaults = _sample_defaults()
    configs = [{"name": "default"}] if not extra_configs else list(extra_configs)
    names = [c.get("name") if isinstance(c, dict) else None for c in configs]
    if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"extra_configs must be dicts with unique non-empty 'name' strings, got {configs!r}")
    cells = []
    for cfg in configs:
        only = cfg.get("solvers")
        if only is not None and (isinstance(only, str) or any(s not in solvers for s in only)):
            raise ValueError(f"extra_configs[{cfg['name']!r}]['solvers'] must be a list of swept solvers, got {only!r}")
        overrides = {k: v for k, v in cfg.items() if k not in ("name", "solvers")}
        for solver in solvers:
            if only is not None and solver not in only:
                continue
            spec = get_solver(solver)
            for nfe in nfes:
                for seed in seeds:
                    kw = {**defaults, **{k: v for k, v in base.items() if v is not None}}
                    kw.update({k: overrides[k] for k in SAMPLE_KEYS if k in overrides})
                    _, kw["schedule"], kw["t_start"], kw["final"] = resolve_defaults(
                        target.process, solver, kw["schedule"], kw.get("t_start"), kw["final"], nfe)
                    kw["dtype"] = _as_dtype(kw["dtype"])
                    _check_sample_kwargs(kw, "" if cfg["name"] == "default" else f" (extra config {cfg['name']!r})")
                    options = {k: v for k, v in overrides.items() if k not in SAMPLE_KEYS}
                    _check_solver_options(spec, options, cfg["name"])
                    if not isinstance(kw["schedule"], str):      # a list spends what it spends: nfe must match
                        build_grid(target.process, spec, nfe, kw["schedule"], kw["t_start"], kw["final"])
                    schedule = kw["schedule"] if isinstance(kw["schedule"], str) else [float(t) for t in kw["schedule"]]
                    config = {"target": target.name, "solver": solver, "nfe": nfe, "seed": seed,
                              "config_name": cfg["name"], "samples": samples, "batch_size": batch_size,
                              "schedule": schedule, "final": kw["final"], "t_start": kw["t_start"],
                              "readout": kw["readout"], "dtype": str(kw["dtype"]).removeprefix("torch."),
                              "device_type": device.type, "solver_options": _jsonable(options)}
                    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
                    config.update(solver_order=spec.order, solver_kind=spec.kind, model=target.description,
                                  process=repr(target.process), sample_shape=list(target.shape),
                                  seeding="batch b of seed s: torch.Generator(device).manual_seed("
                                          "sweep.batch_seed(s, b)); rank r draws batches r, r + W, ...")
                    cells.append(_Cell(solver, nfe, seed, cfg["name"], kw, options, key, config))
    return cells


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return repr(obj)


def _run_cell(cell: _Cell, target: SweepTarget, samples: int, batch_size: int, d: Ranks,
              device: torch.device, on_batch: Callable[[int], None]) -> dict:
    """This rank's share of a cell: its batches, timings, memory, or the error it hit."""
    n_batches = math.ceil(samples / batch_size)
    kw = dict(cell.sample_kwargs)
    kw["readout_as"] = kw.pop("readout")
    parts, infos, error, transient = [], [], None, False
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        try:
            with torch.no_grad():
                for b in range(d.rank, n_batches, d.world):
                    size = min(batch_size, samples - b * batch_size)
                    gen = torch.Generator(device=device).manual_seed(batch_seed(cell.seed, b))
                    x, info = sample(target.model, target.process, cell.solver, cell.nfe, shape=(size, *target.shape),
                                     generator=gen, device=device, **kw, **cell.options)
                    parts.append((b, x.detach().cpu()))
                    infos.append({"nfe": int(info.nfe), "wall": float(info.wall_time), "n_grid": int(len(info.times)),
                                  "t_first": float(info.times[0]), "t_last": float(info.times[-1]),
                                  "schedule": info.schedule, "final": info.final})
                    on_batch(size)
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:  # transient: the cell is retried on resume
            error, transient = f"{type(exc).__name__}: {exc}", True
        except (ValueError, FloatingPointError, RuntimeError) as exc:  # deterministic for the cell's seed
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - unexpected (a bug, a bad solver option): recorded, retried on resume;
            error, transient = f"{type(exc).__name__}: {exc}", True  # caught so that the other ranks do not hang
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
    return {"rank": d.rank, "parts": parts, "infos": infos, "error": error, "transient": transient, "wall": wall,
            "peak": mem.peak, "memory_kind": mem.kind}


def _record(cell: _Cell, target: SweepTarget, shares: list[dict], samples: int, device: torch.device,
            d: Ranks, gather_s: float, command: str | None) -> dict:
    """Rank 0: the JSON line of a cell from every rank's share (metrics on the gathered samples)."""
    errors = [s["error"] for s in shares if s["error"]]
    infos = [i for s in shares for i in s["infos"]]
    wall = max(s["wall"] for s in shares)
    rec: dict[str, Any] = {
        "key": cell.key, "status": ("failed" if any(s["transient"] for s in shares) else "error") if errors else "ok",
        "target": target.name, "solver": cell.solver,
        "nfe": cell.nfe, "nfe_spent": None, "seed": cell.seed, "config_name": cell.config_name, "samples": samples,
        "primary_metric": target.primary,
        "metric_spec": {m.name: {"label": m.label, "better": m.better, "log_scale": m.log_scale} for m in target.metrics},
    }
    if infos:
        spent = sorted({i["nfe"] for i in infos})
        rec["nfe_spent"] = spent[0] if len(spent) == 1 else sum(i["nfe"] for i in infos) / len(infos)
        rec["nfe_spent_per_batch"] = spent if len(spent) > 1 else None
        first = infos[0]
        cell.config.update(grid_points=first["n_grid"], t_first=first["t_first"], t_last=first["t_last"],
                           schedule_used=first["schedule"], final_used=first["final"])
    metric_s = 0.0
    if errors:
        rec["error"] = errors[0]
    else:
        parts = sorted((p for s in shares for p in s["parts"]), key=lambda p: p[0])
        x = torch.cat([p[1] for p in parts])
        assert x.shape[0] == samples, (x.shape, samples)
        t0 = time.perf_counter()
        metrics, floor, floor_std = target.evaluate(x, cell.seed)
        metric_s = time.perf_counter() - t0
        rec["metrics"], rec["noise_floor"], rec["noise_floor_std"] = metrics, floor, floor_std
        rec["noise_floor_method"] = target.floor_note
    rec["config"] = cell.config
    rec["timing"] = {"wall_time_s": wall, "samples_per_s": samples / wall if wall > 0 and not errors else None,
                     "sampling_time_s": sum(i["wall"] for i in infos), "gather_time_s": gather_s,
                     "metrics_time_s": metric_s,
                     "note": "wall_time_s: slowest rank's batch loop (sample() calls incl. start state and readout)"}
    rec["memory"] = {"peak_bytes": max(s["peak"] for s in shares), "per_rank_bytes": [s["peak"] for s in shares],
                     "kind": shares[0]["memory_kind"]}
    rec["versions"] = versions()
    rec["machine"] = machine(device, d.world)
    rec["command"] = command
    rec["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return rec

class _Progress:
    """Rich progress bars for cells and samples (rank 0 only; a no-op when disabled)."""

    def __init__(self, enabled: bool, n_cells: int, samples: int):
        self.bar = None
        if not enabled:
            return
        self.bar = progress_bar("{task.description}")
        self.cells = self.bar.add_task("cells", total=n_cells)
        self.samples = self.bar.add_task("samples", total=samples)

    def start_cell(self, cell: _Cell) -> None:
        if self.bar:
            self.bar.reset(self.samples, description=f"samples {cell.solver} nfe={cell.nfe} seed={cell.seed}"
                           + ("" if cell.config_name == "default" else f" [{cell.config_name}]"))

    def advance(self, n: int) -> None:
        if self.bar:
            self.bar.advance(self.samples, n)

    def end_cell(self, samples: int) -> None:
        if self.bar:
            self.bar.update(self.samples, completed=samples)
            self.bar.advance(self.cells, 1)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()

def run_sweep(target: str | SweepTarget, solvers: Sequence[str], nfes: Sequence[int], samples: int,
              seeds: int | Sequence[int], out_dir: str | Path, *, schedule: Any = None, final: str | None = None,
              extra_configs: Sequence[dict] | None = None, progress: bool = True, batch_size: int = 1000,
              t_start: float | None = None, readout: str | None = None, dtype: Any = None,
              device: str | torch.device = "cpu", config: Any = None, command: str | None = None) -> list[dict]:
    """Run every (solver, NFE, seed[, config]) cell not yet in ``out_dir/results.jsonl``; return all records.

    target: ``oracle:gmm|discretised|markov``, a checkpoint name/path (``config`` goes to
    ``load_checkpoint``) or a :class:`SweepTarget`. schedule / final / t_start / readout /
    dtype: ``sample`` arguments (None: its defaults, resolved and recorded per line).
    extra_configs: dicts with a unique ``name``, overrides of those arguments or solver
    options, and optionally ``solvers`` (the solvers it applies to; default all); each one
    adds a cell per (solver, NFE, seed); without it there is one config, "default". Under torch.distributed
    (torchrun) the batches are shared over the ranks and only rank 0 writes and returns
    records (other ranks return []).
    """
    solvers = _validate_list("solvers", solvers, "solvers")
    for s in solvers:
        get_solver(s)
    nfes = _validate_list("nfes", nfes, "nfes")
    if any(not is_int(n) or n < 1 for n in nfes):
        raise ValueError(f"nfes must be positive integers, got {nfes}")
    seeds = _validate_list("seeds", seeds, "seeds")
    if any(not is_int(s) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {seeds}")
    if not is_int(samples) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    out = _check_out_dir(out_dir)
    device = torch.device(device)
    d, device = init_distributed(device)
    try:
        tgt = resolve_target(target, config=config, device=device)
        kind = data_kind(tgt.process)
        bad = [s for s in solvers if kind not in get_solver(s).data]
        if bad:
            raise ValueError(f"solvers {bad} do not support {kind} data (target {tgt.name!r})")
        base = {"schedule": schedule, "final": final, "t_start": t_start, "readout": readout, "dtype": dtype}
        cells = _plan_cells(tgt, solvers, nfes, seeds, samples, batch_size, base, extra_configs, device)
        path = results_path(out)
        lock = FolderLock(out)
        plan: tuple[Exception | None, list | None] = (None, None)
        if d.rank == 0:
            try:
                out.mkdir(parents=True, exist_ok=True)
                lock.acquire()
            except SweepLockedError as exc:
                plan = (exc, None)
            except OSError as exc:
                plan = (ValueError(f"out: cannot create or lock {str(out)!r}: {exc}"), None)
            else:
                records = read_results(out, repair=True)
                done = {r.get("key") for r in records if r.get("status") in ("ok", "error")}
                plan = (None, [c.key for c in cells if c.key not in done])
                written = {r.get("key") for r in records}
        error, pending_keys = broadcast(plan, d)
        if error is not None:  # every rank raises, none waits for the others
            raise error
        pending_keys = set(pending_keys)
        todo = [c for c in cells if c.key in pending_keys]
        bar = _Progress(progress and d.rank == 0, len(todo), samples)
        try:
            for cell in todo:
                bar.start_cell(cell)
                share = _run_cell(cell, tgt, samples, batch_size, d, device, bar.advance)
                t0 = time.perf_counter()
                shares = gather(share, d)
                gather_s = time.perf_counter() - t0
                if d.rank == 0:
                    write_record(path, _record(cell, tgt, shares, samples, device, d, gather_s, command), written)
                bar.end_cell(samples)
        finally:
            bar.close()
            lock.release()
        return read_results(out) if d.rank == 0 else []
    finally:
        if d.owned:
            import torch.distributed as dist

            dist.destroy_process_group()
