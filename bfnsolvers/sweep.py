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
writes the lines. ``bfnsolvers.report`` renders the results.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import inspect
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch
from torch import Tensor

from .oracles import oracle_problem
from .sampling import data_kind, resolve_defaults, sample
from .schedules import SCHEDULES, check_times
from .solvers import SOLVERS, get_solver

__all__ = [
    "Metric",
    "SweepLockedError",
    "SweepTarget",
    "add_sweep_arguments",
    "batch_seed",
    "read_results",
    "resolve_target",
    "run_sweep",
    "run_sweep_cli",
]

RESULTS_FILE = "results.jsonl"
ORACLE_PREFIX = "oracle:"
ORACLE_NAMES = ("gmm", "discretised", "markov")
Better = Literal["lower", "higher", "zero", "floor"]
#: Independent exact sets whose metrics against the reference set average into an oracle's noise floor.
FLOOR_REPLICATES = 8
#: Keys of an extra config that go to ``sample`` by name; any other key is a solver option.
SAMPLE_KEYS = ("schedule", "final", "t_start", "readout", "dtype")


# --------------------------------------------------------------------------- targets and metrics


@dataclass(frozen=True)
class Metric:
    """A quality metric. better: "lower", "higher", "zero" (|value| lower) or "floor"
    (|value - noise floor| lower, e.g. an NLL whose exact-sample value is the entropy)."""

    name: str
    label: str
    better: Better = "lower"
    log_scale: bool = False


@dataclass
class SweepTarget:
    """What a sweep samples from and how it scores samples.

    evaluate(samples, seed) -> (metrics, noise floor, floor std): dicts over ``metrics``
    names; the floor is the same metric for exact/real samples of the same size (a mean
    over replicate sets where there are several, with their std; else the std dict is empty).
    """

    name: str
    model: Callable
    process: Any
    shape: tuple[int, ...]
    metrics: tuple[Metric, ...]
    evaluate: Callable[[Tensor, int], tuple[dict[str, float], dict[str, float], dict[str, float]]]
    primary: str
    description: str = ""
    floor_note: str = ""


def _tag_generator(seed: int, tag: str) -> torch.Generator:
    return torch.Generator().manual_seed(_hash_seed(f"bfnsolvers.sweep|{tag}|{seed}"))


def _hash_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2 ** 63 - 1)


def batch_seed(seed: int, batch: int) -> int:
    """Seed of the generator of batch ``batch`` (samples ``batch * B`` onwards) for ``seed``."""
    return _hash_seed(f"bfnsolvers.sweep|batch|{seed}|{batch}")


def _move_tensors(obj: Any, device: torch.device) -> Any:
    """A shallow copy of ``obj`` with its tensor attributes on ``device`` (oracles on a GPU)."""
    if device.type == "cpu":
        return obj
    clone = object.__new__(type(obj))
    clone.__dict__.update({k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in vars(obj).items()})
    return clone


def _oracle_target(name: str, device: torch.device) -> SweepTarget:
    oracle, process = oracle_problem(name)
    cache: dict[tuple[int, int], tuple[Tensor, dict, dict]] = {}

    def exact_sets(seed: int, n: int) -> tuple[Tensor, dict, dict]:
        """Exact set A (the reference) and the floor: mean and std of the metrics of
        FLOOR_REPLICATES more independent exact sets of the same size against A."""
        if (seed, n) not in cache:
            a = oracle.sample(n, _tag_generator(seed, f"exact-a|{name}"))
            reps = [score(oracle.sample(n, _tag_generator(seed, f"exact-b{r}|{name}")), a, seed)
                    for r in range(FLOOR_REPLICATES)]
            mean = {k: statistics.fmean(r[k] for r in reps) for k in reps[0]}
            std = {k: statistics.stdev(r[k] for r in reps) for k in reps[0]}
            cache.clear()
            cache[(seed, n)] = (a, mean, std)
        return cache[(seed, n)]

    def sw2(x: Tensor, ref: Tensor, seed: int) -> float:
        return sliced_w2(x, ref, n_projections=512, generator=_tag_generator(seed, "projections"))

    from .metrics import gmm_nll, markov_bigram_tv, markov_chain_nll, mode_coverage
    from .metrics import sliced_wasserstein2 as sliced_w2

    if name == "gmm":
        metrics = (Metric("sw2", "sliced W2 to exact samples", "lower", True),
                   Metric("nll", "NLL under the exact density (nats/dim)", "floor"),
                   Metric("modes_covered", "fraction of modes covered", "higher"),
                   Metric("samples_near", "fraction of samples near a mode", "higher"))

        def score(x: Tensor, ref: Tensor, seed: int) -> dict:
            x = x.double().cpu()
            cov = mode_coverage(x, oracle.means, oracle.std)
            return {"sw2": sw2(x, ref, seed), "nll": gmm_nll(x, oracle.means, oracle.std, oracle.weights, per_dim=True),
                    "modes_covered": cov.modes_covered, "samples_near": cov.samples_near}
        shape, model, primary = (oracle.dim,), oracle, "sw2"
    elif name == "discretised":
        metrics = (Metric("sw2", "sliced W2 to exact samples", "lower", True),
                   Metric("nll", "NLL under the exact distribution (nats/dim)", "floor"))

        def score(x: Tensor, ref: Tensor, seed: int) -> dict:
            x = x.double().cpu()
            return {"sw2": sw2(x, ref, seed), "nll": -oracle.log_prob(x).mean().item() / x.shape[1]}
        shape, model, primary = (oracle.probs.shape[0],), oracle, "sw2"
    else:
        entropy = oracle.entropy_rate()
        metrics = (Metric("entropy_gap", "NLL/token minus the chain's entropy rate (nats)", "zero"),
                   Metric("entropy_gap_abs", "|NLL/token minus the entropy rate| (nats; floor: mean over exact sets)",
                          "lower", True),
                   Metric("nll", "NLL under the exact chain (nats/token)", "floor"),
                   Metric("bigram_tv", "total variation of adjacent-pair frequencies to the exact pair probabilities",
                          "lower", True),
                   Metric("sw2_onehot", "sliced W2 of one-hot sequences to exact samples", "lower", True))

        def score(x: Tensor, ref: Tensor, seed: int) -> dict:
            x = x.long().cpu()
            nll = markov_chain_nll(x, oracle.init, oracle.trans)
            k = process.num_classes
            onehot = lambda s: torch.nn.functional.one_hot(s, k).flatten(1).double()  # noqa: E731
            return {"entropy_gap": nll - entropy, "entropy_gap_abs": abs(nll - entropy), "nll": nll,
                    "bigram_tv": markov_bigram_tv(x, oracle.init, oracle.trans),
                    "sw2_onehot": sw2(onehot(x), onehot(ref), seed)}
        shape, model, primary = (oracle.length,), oracle, "entropy_gap"

    def evaluate(samples: Tensor, seed: int) -> tuple[dict, dict, dict]:
        a, floor, floor_std = exact_sets(seed, samples.shape[0])
        return score(samples, a, seed), floor, floor_std

    desc = f"{type(oracle).__name__} (oracles.oracle_problem({name!r}))"
    note = (f"mean (and std) of the metrics of {FLOOR_REPLICATES} independent exact sample sets of the same size "
            "against the exact reference set the samples are scored against")
    return SweepTarget(ORACLE_PREFIX + name, _move_tensors(model, device), process, shape, metrics, evaluate,
                       primary, desc, note)


@functools.lru_cache(maxsize=1)
def _char_ngram():
    from .data import load_text_tokens, tokens_to_text
    from .metrics import CharNGram

    return CharNGram().fit(tokens_to_text(load_text_tokens("train")))


def _checkpoint_target(name: str, config: Any, device: torch.device) -> SweepTarget:
    from .checkpoints import load_checkpoint

    try:
        model, process = load_checkpoint(name, config, device=device)
    except FileNotFoundError as exc:
        raise ValueError(f"target: {exc}") from exc
    data_shape = tuple(getattr(model, "data_shape", ()))
    kind = data_kind(process)
    if kind == "discrete" and len(data_shape) == 2 and process.num_classes == 27:
        return _text_target(name, model, process, data_shape[0])
    if kind != "discrete" and data_shape == (8, 8, 1):
        return _digits_target(name, model, process)
    raise ValueError(f"target: no metrics for checkpoint {name!r} ({kind} data of shape {data_shape}); "
                     "sweeps support 8x8x1 digits and 27-class text checkpoints")


def _digits_target(name: str, model: Any, process: Any) -> SweepTarget:
    from .data import load_digits_images
    from .metrics import digits_fd, load_digits_classifier

    classifier = load_digits_classifier()
    test, train = load_digits_images("test"), load_digits_images("train")
    floors: dict[tuple[int, int], dict] = {}

    def evaluate(samples: Tensor, seed: int) -> tuple[dict, dict]:
        n = samples.shape[0]
        if (seed, n) not in floors:
            idx = torch.randperm(len(train), generator=_tag_generator(seed, "digits-floor"))[:min(n, len(train))]
            floors[(seed, n)] = {"fd": digits_fd(train[idx], test, classifier)}
        return {"fd": digits_fd(samples.float().cpu(), test, classifier)}, floors[(seed, n)], {}

    metric = Metric("fd", "Frechet digits distance to the test set (squared; not FID)", "lower", True)
    return SweepTarget(name, model, process, (8, 8, 1), (metric,), evaluate, "fd", f"digits checkpoint {name!r}",
                       "FD of min(N, 1500) random train images to the 297 test images")


def _text_target(name: str, model: Any, process: Any, seq_len: int) -> SweepTarget:
    from .data import load_text_tokens, random_text_windows, tokens_to_text
    from .metrics import spelling_accuracy

    floors: dict[tuple[int, int], dict] = {}

    def score(tokens: Tensor) -> dict:
        texts = tokens_to_text(tokens.long().cpu())
        return {"spelling_accuracy": spelling_accuracy(texts), "char_nll": _char_ngram().nll_per_char(texts)}

    def evaluate(samples: Tensor, seed: int) -> tuple[dict, dict]:
        n = samples.shape[0]
        if (seed, n) not in floors:
            real = random_text_windows(load_text_tokens("test"), seq_len, n, _tag_generator(seed, "text-floor"))
            floors[(seed, n)] = score(real)
        return score(samples), floors[(seed, n)], {}

    metrics = (Metric("spelling_accuracy", "spelling accuracy (fraction of dictionary words)", "higher"),
               Metric("char_nll", "char 7-gram NLL, KJV train fit (nats/char)", "floor"))
    return SweepTarget(name, model, process, (seq_len,), metrics, evaluate, "spelling_accuracy",
                       f"text checkpoint {name!r}", f"N random windows of {seq_len} characters of the KJV test split")


def resolve_target(target: str | SweepTarget, *, config: Any = None, device: str | torch.device = "cpu") -> SweepTarget:
    """``oracle:gmm`` / ``oracle:discretised`` / ``oracle:markov``, a checkpoint name or path, or a SweepTarget."""
    if isinstance(target, SweepTarget):
        return target
    device = torch.device(device)
    if not isinstance(target, str) or not target:
        raise ValueError(f"target must be 'oracle:<name>' or a checkpoint name/path, got {target!r}")
    if target.startswith(ORACLE_PREFIX):
        name = target[len(ORACLE_PREFIX):]
        if name not in ORACLE_NAMES:
            raise ValueError(f"target: unknown oracle {name!r}; expected one of "
                             f"{[ORACLE_PREFIX + n for n in ORACLE_NAMES]}")
        return _oracle_target(name, device)
    from .checkpoints import resolve_checkpoint_path

    if not Path(resolve_checkpoint_path(target)).is_file():
        raise ValueError(f"target: {target!r} is neither an oracle ({', '.join(ORACLE_PREFIX + n for n in ORACLE_NAMES)}) "
                         "nor an existing checkpoint file or shipped checkpoint name")
    return _checkpoint_target(target, config, device)


# --------------------------------------------------------------------------- results file


def _parse_lines(data: bytes) -> tuple[list[dict], bool]:
    """(records, clean): every line that parses as a JSON object, the last one per ``key`` (in the
    order of first appearance); ``clean`` is False if a line was corrupt, partial or a duplicate."""
    by_key: dict[Any, dict] = {}
    clean = data.endswith(b"\n") or not data
    for i, raw in enumerate(data.splitlines()):
        if not raw.strip():
            clean = False
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            clean = False  # torn by a crash or corrupted by something else than our writer: the cell reruns
            continue
        if not isinstance(rec, dict):
            clean = False
            continue
        key = rec.get("key", ("line", i))
        if key in by_key:
            clean = False
            del by_key[key]  # a re-run cell: its last line counts (placed where it was rewritten)
        by_key[key] = rec
    return list(by_key.values()), clean


def read_results(out_dir: str | Path, *, repair: bool = False) -> list[dict]:
    """The records of ``out_dir/results.jsonl``: corrupt or partial lines are skipped, a key seen twice
    counts once (its last line). ``repair``: if any line was skipped, rewrite the file without it (atomically)."""
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        return []
    records, clean = _parse_lines(path.read_bytes())
    if repair and not clean:
        _rewrite(path, records)
    return records


def _encode(record: dict) -> bytes:
    return (json.dumps(_finite(record), sort_keys=False) + "\n").encode()


def _rewrite(path: Path, records: Sequence[dict]) -> None:
    """Replace ``path`` by ``records`` atomically: a fsynced temporary file renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(b"".join(_encode(r) for r in records))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _append_line(path: Path, record: dict) -> None:
    line = _encode(record)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_record(path: Path, record: dict, written: set) -> None:
    """Append a cell's line, or, for a key already in the file (a failed cell re-run), rewrite the
    file with its old line replaced: one line per key."""
    if record["key"] in written:
        records = read_results(path.parent)
        _rewrite(path, [record if r.get("key") == record["key"] else r for r in records])
    else:
        _append_line(path, record)
        written.add(record["key"])


class SweepLockedError(RuntimeError):
    """Another sweep holds the lock of the output folder."""


LOCK_FILE = "sweep.lock"


class _FolderLock:
    """An exclusive ``fcntl.flock`` on ``out_dir/sweep.lock`` (released when the process ends, even
    killed: no stale locks); holds the owner's pid and host for the error message."""

    def __init__(self, out: Path):
        self.out, self.path, self.fd = out, out / LOCK_FILE, None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SweepLockedError(f"out: another sweep is running on {str(self.out)!r} (lock {str(self.path)!r} "
                                   f"held by {owner}); wait for it to end or use another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {platform.node()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def _finite(obj: Any) -> Any:
    """Strict JSON: non-finite floats become None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- environment


@functools.lru_cache(maxsize=1)
def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("bfnsolvers", "torch", "numpy", "scipy", "matplotlib", "rich", "triton"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    root = Path(__file__).resolve().parents[1]
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


def _machine(device: torch.device, world_size: int) -> dict:
    info = {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "world_size": world_size, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class _PeakMemory:
    """Peak memory of one cell on this rank: CUDA max allocated, else the peak RSS increase."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> "_PeakMemory":
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
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"{field_name}:\s+(\d+)", text).group(1)) * 1024


# --------------------------------------------------------------------------- distributed


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    owned: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1


def _init_distributed(device: torch.device) -> tuple[_Dist, torch.device]:
    """Join the torch.distributed group (initialising it under torchrun); pick this rank's device."""
    import torch.distributed as dist

    owned = False
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owned = True
    if not (dist.is_available() and dist.is_initialized()):
        return _Dist(), device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count())))
        torch.cuda.set_device(device)
    return _Dist(dist.get_rank(), dist.get_world_size(), owned), device


def _gather(obj: Any, d: _Dist) -> list[Any]:
    if not d.active:
        return [obj]
    import torch.distributed as dist

    out = [None] * d.world if d.rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def _broadcast(obj: Any, d: _Dist) -> Any:
    if not d.active:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# --------------------------------------------------------------------------- cells


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


_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _as_dtype(value: Any) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str) and value.removeprefix("torch.") in _DTYPES:
        return _DTYPES[value.removeprefix("torch.")]
    raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {value!r}")


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


_READOUTS = ("mean", "mode", "sample")


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
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or not 0 <= t < 1:
        raise ValueError(f"t_start{where}: expected a finite number in [0, 1), got {t!r}")
    if kw["final"] not in ("denoise", "state", "drop"):
        raise ValueError(f"final{where}: expected 'denoise', 'state' or 'drop', got {kw['final']!r}")
    if kw["readout"] not in _READOUTS:
        raise ValueError(f"readout{where}: expected one of {list(_READOUTS)}, got {kw['readout']!r}")


def _check_solver_options(spec: Any, options: dict, config_name: str) -> None:
    """Options of an extra config that the solver's function does not take: a ValueError before any cell runs."""
    if not options:
        return
    params = inspect.signature(spec.fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = sorted(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "callback")
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"extra_configs[{config_name!r}]: {spec.name} takes no option {unknown}; its options: {valid}, "
                         f"and the sample() arguments {list(SAMPLE_KEYS)}")


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
                        target.process, solver, kw["schedule"], kw.get("t_start"), kw["final"])
                    kw["dtype"] = _as_dtype(kw["dtype"])
                    _check_sample_kwargs(kw, "" if cfg["name"] == "default" else f" (extra config {cfg['name']!r})")
                    options = {k: v for k, v in overrides.items() if k not in SAMPLE_KEYS}
                    _check_solver_options(spec, options, cfg["name"])
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


def _run_cell(cell: _Cell, target: SweepTarget, samples: int, batch_size: int, d: _Dist,
              device: torch.device, on_batch: Callable[[int], None]) -> dict:
    """This rank's share of a cell: its batches, timings, memory, or the error it hit."""
    n_batches = math.ceil(samples / batch_size)
    kw = dict(cell.sample_kwargs)
    kw["readout_as"] = kw.pop("readout")
    parts, infos, error, transient = [], [], None, False
    with _PeakMemory(device) as mem:
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
            d: _Dist, gather_s: float, command: str | None) -> dict:
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
    rec["versions"] = _versions()
    rec["machine"] = _machine(device, d.world)
    rec["command"] = command
    rec["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return rec


class _Progress:
    """Rich progress bars for cells and samples (rank 0 only; a no-op when disabled)."""

    def __init__(self, enabled: bool, n_cells: int, samples: int):
        self.bar = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn())
        self.cells = self.bar.add_task("cells", total=n_cells)
        self.samples = self.bar.add_task("samples", total=samples)
        self.bar.start()

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
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in nfes):
        raise ValueError(f"nfes must be positive integers, got {nfes}")
    seeds = _validate_list("seeds", seeds, "seeds")
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {seeds}")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    out = _check_out_dir(out_dir)
    device = torch.device(device)
    d, device = _init_distributed(device)
    try:
        tgt = resolve_target(target, config=config, device=device)
        kind = data_kind(tgt.process)
        bad = [s for s in solvers if kind not in get_solver(s).data]
        if bad:
            raise ValueError(f"solvers {bad} do not support {kind} data (target {tgt.name!r})")
        base = {"schedule": schedule, "final": final, "t_start": t_start, "readout": readout, "dtype": dtype}
        cells = _plan_cells(tgt, solvers, nfes, seeds, samples, batch_size, base, extra_configs, device)
        path = out / RESULTS_FILE
        lock = _FolderLock(out)
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
        error, pending_keys = _broadcast(plan, d)
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
                shares = _gather(share, d)
                gather_s = time.perf_counter() - t0
                if d.rank == 0:
                    _write_record(path, _record(cell, tgt, shares, samples, device, d, gather_s, command), written)
                bar.end_cell(samples)
        finally:
            bar.close()
            lock.release()
        return read_results(out) if d.rank == 0 else []
    finally:
        if d.owned:
            import torch.distributed as dist

            dist.destroy_process_group()


# --------------------------------------------------------------------------- CLI


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _sweep_schedule(text: str) -> str | list[float]:
    """--schedule of a sweep: a named grid or a comma list of times ("calibrated" is per model: not in sweeps)."""
    from .cli import parse_schedule

    value = parse_schedule(text)
    if value == "calibrated":
        raise argparse.ArgumentTypeError("'calibrated' is not available in sweeps; pass the calibrated times as a "
                                         "comma-separated list")
    return value


def _json_config(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--extra-config must be a JSON object: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise argparse.ArgumentTypeError(f"--extra-config must be a JSON object with a 'name', got {text!r}")
    return value


def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``bfnsolvers sweep``."""
    parser.add_argument("--checkpoint", "--target", dest="target", required=True,
                        help="oracle:gmm | oracle:discretised | oracle:markov, or a checkpoint name or path")
    parser.add_argument("--config", default=None, help="checkpoint config (preset name or YAML) for load_checkpoint")
    parser.add_argument("--solvers", default="all",
                        help="comma-separated registered solvers, or 'all' (every solver for the data type except reference)")
    parser.add_argument("--nfe", type=_int_list, default=[5, 10, 20, 50, 100, 200, 1000], help="comma-separated NFEs")
    parser.add_argument("--samples", type=int, default=2000, help="samples per cell")
    parser.add_argument("--seed", type=_int_list, default=[0], help="seed or comma-separated seeds")
    parser.add_argument("--out", required=True, help="output folder (results.jsonl; re-runs resume)")
    parser.add_argument("--schedule", default=None, type=_sweep_schedule,
                        help="time grid: uniform | logsnr | quadratic | quadratic-start, or comma-separated BFN times "
                             "(default: sample()'s)")
    parser.add_argument("--final", default=None, choices=("denoise", "state", "drop"), help="last step (default: sample()'s)")
    parser.add_argument("--t-start", type=float, default=None, help="first grid time (default: per solver)")
    parser.add_argument("--readout", default=None, choices=("mean", "mode", "sample"), help="final readout")
    parser.add_argument("--dtype", default=None, choices=sorted(_DTYPES), help="sampling dtype (default: sample()'s)")
    parser.add_argument("--extra-config", action="append", type=_json_config, default=[], metavar="JSON",
                        help='additional config besides the default one, e.g. \'{"name": "uniform", "schedule": '
                             '"uniform", "solvers": ["bfn"]}\' (repeatable)')
    parser.add_argument("--batch-size", type=int, default=1000, help="samples per sample() call (bounds memory)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before sampling")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    parser.add_argument("--report", action="store_true", help="render report.md and the PNGs when done")
    parser.add_argument("--allow-errors", action="store_true",
                        help="exit 0 even if some cells recorded errors (e.g. an NFE a solver cannot spend); "
                             "by default such a sweep exits 1")
    return parser


def _all_solvers(target: str) -> list[str]:
    """Every registered solver except ``reference`` that supports the target's data type."""
    tgt_kind = None
    if target.startswith(ORACLE_PREFIX):
        tgt_kind = {"gmm": "continuous", "discretised": "discretised", "markov": "discrete"}.get(target[len(ORACLE_PREFIX):])
    if tgt_kind is None:
        tgt_kind = data_kind(resolve_target(target).process)
    return [name for name, spec in SOLVERS.items() if name != "reference" and tgt_kind in spec.data]


def _command_line() -> str:
    import shlex

    prog = Path(sys.argv[0]).name
    prog = "python -m bfnsolvers.sweep" if prog in ("sweep.py", "__main__.py") else prog
    return " ".join([prog, shlex.join(sys.argv[1:])])


def run_sweep_cli(args: argparse.Namespace) -> int:
    """``bfnsolvers sweep``: run the sweep (resuming), optionally render the report; returns an exit code."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    solvers = _all_solvers(args.target) if args.solvers == "all" else [s for s in args.solvers.split(",") if s]
    records = run_sweep(args.target, solvers, args.nfe, args.samples, args.seed, args.out, schedule=args.schedule,
                        final=args.final, progress=not args.no_progress, batch_size=args.batch_size,
                        extra_configs=[{"name": "default"}, *args.extra_config] if args.extra_config else None,
                        t_start=args.t_start, readout=args.readout, dtype=args.dtype, device=args.device,
                        config=args.config, command=_command_line())
    bad = [r for r in records if r.get("status") != "ok"]
    print(f"{len(records)} cells in {Path(args.out) / RESULTS_FILE} ({len(bad)} with errors)")
    if args.report and records:
        from .report import render_report

        render_report(args.out)
        print(f"report: {Path(args.out) / 'report.md'}")
    if bad:
        first = bad[0]
        print(f"bfnsolvers sweep: {len(bad)} of {len(records)} cells failed; first: {first.get('solver')} "
              f"NFE {first.get('nfe')} seed {first.get('seed')} [{first.get('config_name', 'default')}]: "
              f"{first.get('error', 'no metrics')}", file=sys.stderr)
        return 0 if args.allow_errors else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bfnsolvers.sweep ...``: ``bfnsolvers sweep ...`` (same arguments, errors and exit status)."""
    from .cli import main as cli_main

    return cli_main(["sweep", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
