"""bfnsolvers.train: resumable training, export in the official layout, CLI arguments, validation."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from bfnsolvers import checkpoints
from bfnsolvers.checkpoints import CONFIG_METADATA_KEY, load_checkpoint
from bfnsolvers.processes import ContinuousBFN, DiscreteBFN, DiscretisedBFN
from bfnsolvers.train import (
    RECIPES,
    TrainConfig,
    add_train_arguments,
    digits_model_config,
    evaluate_loss_inf,
    get_recipe,
    evaluation_set,
    text_model_config,
    train,
)
from bfnsolvers.train.loop import _lr_at


def tiny(recipe: str, **changes) -> TrainConfig:
    """The recipe with a tiny network and batch, short schedule (seconds on one CPU thread)."""
    cfg = get_recipe(recipe)
    if cfg.data == "digits":
        height = cfg.model["output_adapter"]["parameters"]["output_height"]
        model = digits_model_config(embedding_dim=32, n_blocks=1, output_height=height)
    else:
        model = text_model_config(n_layer=1, n_head=2, n_embd=32, seq_len=16)
    model["bayesian_flow"] = cfg.model["bayesian_flow"]
    model["distribution_factory"] = cfg.model["distribution_factory"]
    base = dict(model=model, steps=6, batch_size=4, warmup_steps=2, eval_every=3, save_every=2, log_every=1,
                eval_items=8, seq_len=16)
    return cfg.replace(**{**base, **changes})




def _records(path) -> list[dict]:
    return [{k: v for k, v in json.loads(ln).items() if k != "elapsed"} for ln in open(path) if ln.strip()]


@pytest.mark.parametrize("recipe", ["digits-continuous", "text-discrete"])
def test_resume_is_bit_identical(tmp_path, recipe):
    cfg = tiny(recipe)
    straight = train(cfg, tmp_path / "a_out", tmp_path / "a_state", progress=False)
    first = train(cfg, tmp_path / "b_out", tmp_path / "b_state", progress=False, stop_at=3)
    assert first["step"] == 3 and not first["finished"]
    resumed = train(cfg, tmp_path / "b_out", tmp_path / "b_state", progress=False)
    assert resumed["step"] == 6 and resumed["finished"]
    for key in ("model", "ema"):
        a, b = straight[key].state_dict(), resumed[key].state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), key
    assert _records(straight["log"]) == _records(resumed["log"])
    # the exports (EMA weights) are identical too
    from safetensors.torch import load_file

    ea, eb = load_file(straight["export"]), load_file(resumed["export"])
    assert all(torch.equal(ea[k], eb[k]) for k in ea)


def test_interrupted_run_log_is_truncated_on_resume(tmp_path):
    cfg = tiny("digits-continuous", save_every=3)
    train(cfg, None, tmp_path, progress=False, stop_at=3)
    log = tmp_path / f"{cfg.name}.jsonl"
    with open(log, "a") as f:  # a record written after the last save, as if the run died there
        f.write(json.dumps({"step": 4, "loss": 1.0}) + "\n")
    train(cfg, None, tmp_path, progress=False)
    steps = [r["step"] for r in _records(log) if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_with_other_config_is_refused(tmp_path):
    train(tiny("digits-continuous"), None, tmp_path, progress=False, stop_at=2)
    with pytest.raises(ValueError, match="lr"):
        train(tiny("digits-continuous", lr=1e-4), None, tmp_path, progress=False)
    # resume=False starts afresh
    out = train(tiny("digits-continuous", lr=1e-4), None, tmp_path, progress=False, resume=False, stop_at=1)
    assert out["step"] == 1


@pytest.mark.parametrize("recipe, kind", [("digits-continuous", ContinuousBFN),
                                          ("digits-discretised", DiscretisedBFN),
                                          ("text-discrete", DiscreteBFN)])
def test_export_loads_without_config(tmp_path, recipe, kind):
    cfg = tiny(recipe, steps=2)
    out = train(cfg, tmp_path, tmp_path / "state", progress=False)
    path = tmp_path / f"{cfg.name}.safetensors"
    model, process = load_checkpoint(path)
    assert type(process) is kind
    ref = checkpoints.make_process(cfg.model)
    assert process_params(process) == process_params(ref)
    ema = out["ema"].state_dict()
    got = model.state_dict()
    assert set(got) == set(ema) and all(k.startswith("net.") for k in got)
    assert all(torch.equal(got[k], ema[k]) for k in got)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()[CONFIG_METADATA_KEY])
    assert meta["step"] == 2 and meta["train"]["name"] == cfg.name
    assert meta["process"]["class"] == kind.__name__
    assert meta["model"]["bayesian_flow"] == cfg.model["bayesian_flow"]


def process_params(p) -> dict:
    return {k: getattr(p, k) for k in ("sigma_1", "num_bins", "beta_1", "num_classes") if hasattr(p, k)}


def test_shipped_name_resolution(tmp_path, monkeypatch):
    cfg = tiny("digits-continuous", steps=1, name="tiny-digits")
    train(cfg, tmp_path, tmp_path / "state", progress=False)
    monkeypatch.setattr(checkpoints, "SHIPPED_DIR", tmp_path)
    model, process = load_checkpoint("tiny-digits")
    assert isinstance(process, ContinuousBFN) and model.output_type == "eps"
    with pytest.raises(checkpoints.CheckpointError, match="no such checkpoint"):
        load_checkpoint("no-such-shipped-name")
    # an explicit config still wins over the embedded one
    with pytest.raises(checkpoints.CheckpointError):
        load_checkpoint("tiny-digits", config="cifar10-continuous-256")


def test_lr_schedule():
    cfg = get_recipe("digits-continuous", steps=1000, warmup_steps=100, lr=1e-3, min_lr_ratio=0.1)
    assert _lr_at(cfg, 0) == pytest.approx(1e-5)
    assert _lr_at(cfg, 99) == pytest.approx(1e-3)
    assert _lr_at(cfg, 100) == pytest.approx(1e-3)
    assert _lr_at(cfg, 550) == pytest.approx(0.55e-3)
    assert _lr_at(cfg, 1000) == pytest.approx(1e-4)


def test_evaluate_loss_inf_is_seeded_and_has_stderr():
    cfg = tiny("digits-continuous")
    from bfnsolvers.train.build import _build

    model, process, _ = _build(cfg)
    x = evaluation_set("digits", 16)
    a = evaluate_loss_inf(model, process, x, seed=3, repeats=2)
    b = evaluate_loss_inf(model, process, x, seed=3, repeats=2)
    assert a == b
    assert a[1] > 0 and math.isfinite(a[0])
    assert evaluate_loss_inf(model, process, x, seed=4) != evaluate_loss_inf(model, process, x, seed=3)


def test_test_items():
    x = evaluation_set("text", 256, 64)
    assert x.shape == (256, 64) and x.dtype == torch.int64 and 0 <= x.min() and x.max() < 27
    assert torch.equal(x, evaluation_set("text", 256, 64))
    assert evaluation_set("digits", 256).shape == (256, 8, 8, 1)
    with pytest.raises(ValueError, match="n"):
        evaluation_set("digits", 300)
    with pytest.raises(ValueError, match="data"):
        evaluation_set("audio", 4)


def test_config_validation():
    with pytest.raises(ValueError, match="steps"):
        get_recipe("digits-continuous", steps=0)
    with pytest.raises(ValueError, match="data"):
        get_recipe("digits-continuous", data="audio")
    with pytest.raises(ValueError, match="recipe"):
        get_recipe("cifar10")
    with pytest.raises(ValueError, match="lr"):
        get_recipe("text-discrete", lr=-1.0)
    with pytest.raises(ValueError, match="config"):
        TrainConfig.from_dict({**get_recipe("text-discrete").to_dict(), "bogus": 1})
    assert TrainConfig.from_dict(get_recipe("text-discrete").to_dict()) == get_recipe("text-discrete")
    with pytest.raises(ValueError, match="stop_at"):
        train(tiny("digits-continuous"), None, "unused", stop_at=-1)


def test_cli_arguments():
    parser = add_train_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--recipe", "digits-continuous", "--steps", "7", "--out", "x/"])
    assert args.recipe == "digits-continuous" and args.steps == 7 and args.out == "x/"
    assert not args.no_resume
    assert set(RECIPES) == {"digits-continuous", "digits-discretised", "text-discrete"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--recipe", "nope"])
