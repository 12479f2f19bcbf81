"""File and terminal helpers shared by the bench and train packages: atomic writes and a rich progress bar."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "progress_bar"]


def atomic_write(path: str | Path, write: Callable[[str], Any], *, durable: bool = False) -> None:
    """Write ``path`` whole or not at all: ``write(tmp)`` fills a temporary file next to it, which is then renamed
    over ``path`` (``os.replace``). durable: fsync the file before the rename and the folder after it (a crash
    right after returning keeps the new content). The file gets the umask's permissions (some writers make 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(str(tmp))
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if durable:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def progress_bar(label: str, *fields: str, console: Any = None) -> Any:
    """A started ``rich.progress.Progress``: ``label`` (a column template, e.g. ``"{task.description}"``), a bar,
    done/total, the extra ``fields`` columns (templates), elapsed and remaining time. Stop it with ``.stop()``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), *(TextColumn(f) for f in fields),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=console)
    bar.start()
    return bar
