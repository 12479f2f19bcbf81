"""The shipped ChemBFN MOSES checkpoint (checkpoints/chembfn-moses*, made by benchmarks/chembfn/card.py):
its two formats hold the same weights, its label encoder and QED thresholds are consistent with the card,
and on this real network with its real label MLP bfnsolvers' guided `bfn` (most-likely-token mode, ChemBFN's
grid) reproduces the package's guided `ChemBFN.sample` token for token."""
import importlib
import json
from pathlib import Path

import pytest
import torch

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"
HAVE_CHEM = importlib.util.find_spec("bayesianflow_for_chem") is not None
pytestmark = pytest.mark.skipif(not HAVE_CHEM, reason='ChemBFN is not installed (pip install "bfnsolvers[chem]")')


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_pt_and_safetensors_hold_the_same_weights():
    from safetensors import safe_open
    from safetensors.torch import load_file
    pt = torch.load(CKPT / "chembfn-moses.pt", "cpu", weights_only=True)
    _same(pt["nn"], load_file(str(CKPT / "chembfn-moses.safetensors")))
    with safe_open(str(CKPT / "chembfn-moses.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["hparam"]) == pt["hparam"]
    mlp = torch.load(CKPT / "chembfn-moses-mlp.pt", "cpu", weights_only=True)
    _same(mlp["nn"], load_file(str(CKPT / "chembfn-moses-mlp.safetensors")))
    labels = json.loads((CKPT / "chembfn-moses-labels.json").read_text())
    with safe_open(str(CKPT / "chembfn-moses-mlp.safetensors"), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["hparam"]) == mlp["hparam"] and json.loads(meta["labels"]) == labels
    th = labels["thresholds"]
    assert len(th) == 2 and 0 < th[0] < th[1] < 1
    # class-input MLP: one embedding row per QED class, output width = the network's channel
    assert mlp["hparam"]["class_input"] and mlp["hparam"]["size"][0] == len(th) + 1
    assert mlp["hparam"]["size"][-1] == pt["hparam"]["channel"]
    assert f"{th[0]:.4f}" in (CKPT / "chembfn-moses.md").read_text()


def test_guided_sampling_of_the_shipped_model_matches_chembfn():
    from bfnsolvers import sample
    from bfnsolvers.integrations.chembfn import chembfn_grid, load_chembfn
    model, process = load_chembfn(CKPT / "chembfn-moses.pt", mlp=CKPT / "chembfn-moses-mlp.pt")
    net, mlp = model.net, model.mlp
    c = torch.full((3, 1), 2, dtype=torch.long)
    with torch.no_grad():
        torch.manual_seed(5)
        ref, _ = net.sample(3, 58, mlp(c), sample_step=6, guidance_strength=2.0)
        tok, info = sample(model, process, "bfn", schedule=chembfn_grid(6), final="denoise", readout_as="mode",
                           draw="mode", shape=(3, 58), generator=torch.Generator().manual_seed(5), cond=c,
                           guidance=2.0)
        assert info.nfe == 7
        assert torch.equal(tok, ref)
        # the label matters: class 0 and class 2 give different logits at the same state
        theta = torch.full((1, 58, net.K), 1.0 / net.K)
        t = torch.full((1,), 0.5)
        y0, y2 = torch.zeros((1, 1), dtype=torch.long), torch.full((1, 1), 2, dtype=torch.long)
        assert (model(theta, t, y0) - model(theta, t, y2)).abs().max() > 1e-3
