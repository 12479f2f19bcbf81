"""The results file of a sweep (``results.jsonl``, the one place that knows its name): read, append, repair,
and the folder lock that keeps two sweeps out of one folder."""
from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Sequence

from .._io import atomic_write

__all__ = ["LOCK_FILE", "RESULTS_FILE", "FolderLock", "SweepLockedError", "read_results", "results_path",
           "write_record"]

RESULTS_FILE = "results.jsonl"


def results_path(out_dir: str | Path) -> Path:
    """``out_dir/results.jsonl``."""
    return Path(out_dir) / RESULTS_FILE


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
    path = results_path(out_dir)
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
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"".join(_encode(r) for r in records)), durable=True)


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


def write_record(path: Path, record: dict, written: set) -> None:
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


class FolderLock:
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
