"""Where the shipped checkpoints live: in an installed wheel, ``bfnsolvers/_checkpoints``
(the top-level ``checkpoints/`` folder mapped into the package by ``pyproject.toml``);
in a source checkout (or an editable install), ``<repo>/checkpoints``."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
#: Candidates, in order: the wheel's package data, then the repository folder.
CANDIDATES = (_PACKAGE / "_checkpoints", _PACKAGE.parent / "checkpoints")


def shipped_dir() -> Path:
    """The first candidate folder that holds shipped checkpoints (else the repository one)."""
    for folder in CANDIDATES:
        if any(folder.glob("*.safetensors")):
            return folder
    return CANDIDATES[-1]


#: Folder of the checkpoints shipped with bfnsolvers (``load_checkpoint("<name>")``).
SHIPPED_DIR = shipped_dir()
