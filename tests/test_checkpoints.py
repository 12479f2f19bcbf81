"""load_checkpoint: official state dicts, presets, configs and every error path."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from bfnsolvers.checkpoints import (
    PRESETS,
    CheckpointError,
    infer_preset,
    load_checkpoint,
    make_process,
    preset_config,
    read_state_dict,
)
from bfnsolvers.networks import build_model

from helpers import TESTVECTOR_NETWORKS as NAMES, TESTVECTORS as TV, meta, small_config  # noqa: E402



def ckpt(name: str) -> Path:
    return TV / f"{name}.state_dict.safetensors"


def state(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(ckpt(name)))


def cases(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(TV / f"{name}.cases.safetensors"))


def max_rel_err(model, name: str) -> float:
    c = cases(name)
    with torch.no_grad():
        out = model.net(c["net_input"], c["t"])
    ref = c["net_output"]
    return ((out - ref).abs().max() / ref.abs().max()).item()


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", NAMES)
def test_load_checkpoint_reproduces_official_output(name):
    model, _ = load_checkpoint(ckpt(name), small_config(name))
    assert not model.training
    assert max_rel_err(model, name) < 1e-5


@pytest.mark.parametrize(
    "name, tag, expected",
    [
        ("unet_vdm_c", "256bins", ("ContinuousBFN", {"sigma_1": 1e-3})),
        ("unet_vdm_c", "16bins", ("ContinuousBFN", {"sigma_1": math.sqrt(1e-3)})),
        ("unet_vdm_d", "256bins", ("DiscretisedBFN", {"sigma_1": 1e-3, "num_bins": 256})),
        ("unet_vdm_d", "16bins", ("DiscretisedBFN", {"sigma_1": math.sqrt(1e-3), "num_bins": 16})),
        ("unet_improved_mnist", None, ("DiscreteBFN", {"beta_1": 9.0, "num_classes": 2})),
        ("gpt_text8", None, ("DiscreteBFN", {"beta_1": 0.5625, "num_classes": 27})),
    ],
)
def test_process_from_config(name, tag, expected):
    _, process = load_checkpoint(ckpt(name), small_config(name, tag) if tag else small_config(name))
    cls, attrs = expected
    assert type(process).__name__ == cls
    for key, value in attrs.items():
        assert getattr(process, key) == pytest.approx(value, rel=1e-12)


def test_missing_flow_uses_matching_preset_process():
    cfg = copy.deepcopy(small_config("unet_vdm_d"))
    del cfg["model"]["bayesian_flow"], cfg["model"]["distribution_factory"]
    _, process = load_checkpoint(ckpt("unet_vdm_d"), cfg)
    assert type(process).__name__ == "DiscretisedBFN" and process.num_bins == 256
    assert process.sigma_1 == pytest.approx(1e-3)


@pytest.mark.parametrize("name", ["unet_vdm_c", "gpt_text8"])
def test_solver_schema_config(name):
    model, process = load_checkpoint(ckpt(name), meta(name)["small_config_solver_schema"])
    assert max_rel_err(model, name) < 1e-5
    assert type(process).__name__ == ("ContinuousBFN" if name == "unet_vdm_c" else "DiscreteBFN")


def _yaml_scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if value == {}:
        return "{}"
    return json.dumps(value)  # strings and flow lists


def _to_yaml(obj: dict, indent: int = 0) -> str:
    """Block-style YAML of a config dict (enough for the official schema)."""
    pad = " " * indent
    return "\n".join(
        f"{pad}{key}:\n{_to_yaml(value, indent + 2)}" if isinstance(value, dict) and value
        else f"{pad}{key}: {_yaml_scalar(value)}"
        for key, value in obj.items()
    )


def test_yaml_config_path(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(_to_yaml(small_config("unet_improved_mnist")) + "\n")
    model, process = load_checkpoint(ckpt("unet_improved_mnist"), path)
    assert max_rel_err(model, "unet_improved_mnist") < 1e-5
    assert process.beta_1 == 9.0


# ----------------------------------------------------------------------------- file formats


def test_pt_file_and_nesting(tmp_path):
    sd = state("gpt_text8")
    cfg = small_config("gpt_text8")
    variants = {
        "plain.pt": sd,
        "nested.pth": {"ema": sd, "step": 7},
        "model.pt": {"model": {k.removeprefix("net."): v for k, v in sd.items()}},
        "ddp.pt": {f"module.{k}": v for k, v in sd.items()},
    }
    for fname, obj in variants.items():
        torch.save(obj, tmp_path / fname)
        model, _ = load_checkpoint(tmp_path / fname, cfg)
        assert max_rel_err(model, "gpt_text8") == 0.0, fname


def test_read_state_dict_has_official_keys():
    sd = read_state_dict(ckpt("unet_vdm_c"))
    assert set(sd) == set(meta("unet_vdm_c")["state_dict_keys"])


def test_strict_loading_is_exact():
    model, _ = load_checkpoint(ckpt("unet_improved_mnist"), small_config("unet_improved_mnist"))
    ours, ref = model.state_dict(), state("unet_improved_mnist")
    assert set(ours) == set(ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_fixed_buffers_may_be_omitted(tmp_path):
    for name, key in (("unet_vdm_c", "net.input_adapter.pos_feats"), ("gpt_text8", "net.input_adapter.pos_embedding")):
        sd = state(name)
        del sd[key]
        torch.save(sd, tmp_path / "ckpt.pt")
        model, _ = load_checkpoint(tmp_path / "ckpt.pt", small_config(name))
        assert max_rel_err(model, name) < 1e-5


# ----------------------------------------------------------------------------- presets and inference


@pytest.mark.parametrize(
    "preset, name, tag",
    [
        ("cifar10-continuous-256", "unet_vdm_c", "256bins"),
        ("cifar10-continuous-16", "unet_vdm_c", "16bins"),
        ("cifar10-discretised-256", "unet_vdm_d", "256bins"),
        ("cifar10-discretised-16", "unet_vdm_d", "16bins"),
        ("mnist-discrete", "unet_improved_mnist", None),
        ("text8-discrete", "gpt_text8", None),
    ],
)
def test_presets_equal_official_configs(preset, name, tag):
    info = meta(name)
    official = info["settings"][tag]["official_full_config"] if tag else info["official_full_config"]
    assert preset_config(preset) == official["model"]


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("cifar10-continuous-256", "cifar10-continuous-256"),
        ("cifar10-discretised-16", "cifar10-discretised-256"),  # bins cannot be read from weights
        ("mnist-discrete", "mnist-discrete"),
        ("text8-discrete", "text8-discrete"),
    ],
)
def test_infer_preset_from_official_shapes(preset, expected):
    with torch.device("meta"):
        sd = build_model(PRESETS[preset]).state_dict()
    assert infer_preset(sd) == expected


def test_preset_processes():
    sigma = {k: getattr(make_process(v), "sigma_1", None) for k, v in PRESETS.items()}
    assert sigma["cifar10-continuous-256"] == pytest.approx(1e-3)
    assert sigma["cifar10-discretised-16"] == pytest.approx(math.sqrt(1e-3))
    text8 = make_process(PRESETS["text8-discrete"])
    assert (text8.beta_1, text8.num_classes) == (0.5625, 27)


def test_no_config_uses_inferred_preset_and_reports_size_mismatch():
    with pytest.raises(CheckpointError, match="preset 'text8-discrete'") as info:
        load_checkpoint(ckpt("gpt_text8"))
    assert "expected [256, 768], found [16, 64]" in str(info.value)
    assert "config=" in str(info.value)


# ----------------------------------------------------------------------------- errors


def test_wrong_architecture():
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt("unet_vdm_c"), "text8-discrete")
    msg = str(info.value)
    assert "UNetVDM" in msg and "GPT" in msg and "missing keys" in msg and "unexpected keys" in msg


def test_continuous_checkpoint_with_discretised_config():
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt("unet_vdm_c"), small_config("unet_vdm_d"))
    msg = str(info.value)
    assert "discretised" in msg
    assert "net.output_adapter.output_projection.weight: expected [6, 35], found [3, 35]" in msg


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown preset 'cifar-10'.*cifar10-continuous-256.*text8-discrete"):
        load_checkpoint(ckpt("unet_vdm_c"), "cifar-10")


def test_mis_shaped_missing_and_unexpected_keys(tmp_path):
    sd = state("unet_vdm_c")
    sd["net.conv_in.bias"] = torch.zeros(31)
    del sd["net.conv_out.2.weight"]
    sd["net.extra.weight"] = torch.zeros(2)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "bad.pt", small_config("unet_vdm_c"))
    msg = str(info.value)
    assert "net.conv_in.bias: expected [32], found [31]" in msg
    assert "missing keys (1)" in msg and "net.conv_out.2.weight" in msg
    assert "unexpected keys (1)" in msg and "net.extra.weight" in msg


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_file(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    if suffix == ".pt":
        torch.save(state("gpt_text8"), path)
        data = path.read_bytes()
    else:
        data = ckpt("gpt_text8").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path, small_config("gpt_text8"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".bin", ".weird"])
def test_random_bytes(tmp_path, suffix):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path, "text8-discrete")


def test_not_a_state_dict(tmp_path):
    torch.save({"step": 3, "lr": [1e-4]}, tmp_path / "meta.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "meta.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")


def test_bad_config_argument():
    with pytest.raises(ValueError, match="config"):
        load_checkpoint(ckpt("gpt_text8"), 42)
    with pytest.raises(ValueError, match="no such config file"):
        load_checkpoint(ckpt("gpt_text8"), "missing.yaml")


def test_processes_match_wrapped_model_layout():
    """The loaded model and process agree on the per-sample state shape conventions."""
    model, process = load_checkpoint(ckpt("gpt_text8"), small_config("gpt_text8"))
    assert model.data_shape == (16, process.num_classes)
    model, process = load_checkpoint(ckpt("unet_improved_mnist"), small_config("unet_improved_mnist"))
    assert model.data_shape[-1] == process.num_classes == 2
