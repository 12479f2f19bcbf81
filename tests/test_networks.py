"""Official network architectures: state-dict layout and parity with the official outputs."""

from __future__ import annotations

import sys

import pytest
import torch

from bfnsolvers.networks import build_model, build_network, load_yaml, normalize_model_config
from bfnsolvers.networks.config import parse_yaml_subset

from helpers import TESTVECTOR_NETWORKS as NAMES, TESTVECTORS as TV, meta, small_config  # noqa: E402
from helpers import rel_err  # noqa: E402



def tensors(name: str, kind: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(TV / f"{name}.{kind}.safetensors"))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_layout_matches_official(name):
    model = build_model(small_config(name))
    ours = {k: [list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()}
    assert ours == meta(name)["state_dict_keys"]


@pytest.mark.parametrize("name", NAMES)
def test_fixed_buffers_match_official(name):
    state = tensors(name, "state_dict")
    ours = build_model(small_config(name)).state_dict()
    for key in ("net.input_adapter.pos_feats", "net.input_adapter.pos_embedding"):
        if key in state:
            torch.testing.assert_close(ours[key], state[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bare_network_reproduces_official_output(name):
    net = build_network(small_config(name))
    state = {k.removeprefix("net."): v for k, v in tensors(name, "state_dict").items()}
    net.load_state_dict(state, strict=True)
    cases = tensors(name, "cases")
    with torch.no_grad():
        out = net(cases["net_input"], cases["t"])
    assert out.shape == cases["net_output"].shape
    assert rel_err(out, cases["net_output"]) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_float64_agrees_with_float32_reference(name):
    net = build_network(small_config(name))
    net.load_state_dict({k.removeprefix("net."): v for k, v in tensors(name, "state_dict").items()})
    cases = tensors(name, "cases")
    with torch.no_grad():
        out = net.double()(cases["net_input"].double(), cases["t"].double())
    assert out.dtype == torch.float64
    assert rel_err(out, cases["net_output"].double()) < 1e-4  # the float32 reference's own rounding


def _wrapped(name: str):
    model = build_model(small_config(name))
    model.load_state_dict(tensors(name, "state_dict"), strict=True)
    return model, tensors(name, "cases")


@pytest.mark.parametrize("name", ["unet_vdm_c", "unet_vdm_d"])
def test_image_wrapper_convention(name):
    model, cases = _wrapped(name)
    mu, t = cases["input_mean"], cases["t"][:, 0, 0, 0]
    with torch.no_grad():
        out = model(mu, t)
    h = cases["net_output"].shape[-1]
    assert model.output_type == ("eps" if h == 1 else "eps_gaussian")
    assert model.data_shape == (8, 8, 3)
    ref = cases["net_output"].reshape(*mu.shape, h)
    assert out.shape == (ref.shape[:-1] if h == 1 else ref.shape)
    assert rel_err(out, ref.squeeze(-1) if h == 1 else ref) < 1e-5


def test_binary_wrapper_convention():
    model, cases = _wrapped("unet_improved_mnist")
    theta = cases["input_params_sampling_layout"].squeeze(3)  # (B, H, W, 2) = [P0, P1]
    with torch.no_grad():
        logits = model(theta, cases["t"][:, 0, 0, 0])
    assert model.output_type == "logits" and model.data_shape == (12, 12, 2)
    assert logits.shape == (6, 12, 12, 2)
    assert torch.all(logits[..., 0] == 0)
    assert rel_err(logits[..., 1], cases["net_output"].reshape(6, 12, 12)) < 1e-5
    probs = cases["probs"].reshape(6, 12, 12, 2)
    torch.testing.assert_close(logits.softmax(-1), probs, rtol=0, atol=1e-5)


def test_text_wrapper_convention():
    model, cases = _wrapped("gpt_text8")
    with torch.no_grad():
        logits = model(cases["input_probs"], cases["t"][:, 0])
    assert model.output_type == "logits" and model.data_shape == (16, 27)
    assert rel_err(logits, cases["net_output"]) < 1e-5
    torch.testing.assert_close(logits.softmax(-1), cases["probs"], rtol=0, atol=1e-6)


def test_wrapper_accepts_scalar_time_and_rejects_bad_shapes():
    model, cases = _wrapped("gpt_text8")
    theta = cases["input_probs"][:2]
    with torch.no_grad():
        a = model(theta, 0.3)
        b = model(theta, torch.full((2,), 0.3))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="params"):
        model(theta[:, :8], torch.full((2,), 0.3))
    with pytest.raises(ValueError, match="t: expected shape"):
        model(theta, torch.full((2, 16), 0.3))


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"net": {"class_name": "Nope", "parameters": {}}, "input_adapter": None}, "input_adapter"),
        ({"net": {"class_name": "Nope", "parameters": {}},
          "input_adapter": {"class_name": "TextInputAdapter", "parameters": {"vocab_size": 3, "seq_len": 4}},
          "output_adapter": None}, "unknown 'Nope'"),
        ({"net": {"class_name": "GPT", "parameters": {"vocab_size": 3, "n_layers": 2}},
          "input_adapter": {"class_name": "TextInputAdapter", "parameters": {"vocab_size": 3, "seq_len": 4}},
          "output_adapter": None}, "n_layers"),
        ({"nett": {}}, "'net'"),
        ([1, 2], "expected a dict"),
    ],
)
def test_build_network_rejects_bad_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_network(cfg)


def test_official_full_size_configs_build():
    """The full official configs build (on the meta device: shapes only, no memory)."""
    expected_heads = {"unet_vdm_c": [3, 131], "unet_vdm_d": [6, 131], "unet_improved_mnist": [1, 256]}
    for name in NAMES:
        info = meta(name)
        full = info["settings"]["256bins"]["official_full_config"] if "settings" in info else info["official_full_config"]
        with torch.device("meta"):
            state = build_model(full).state_dict()
        if name in expected_heads:
            assert list(state["net.output_adapter.output_projection.weight"].shape) == expected_heads[name]
        else:
            assert list(state["net.lm_head.weight"].shape) == [27, 1536]
            assert sum(k.endswith("attn.c_attn.weight") for k in state) == 24


def test_solver_schema_config_is_accepted():
    info = meta("unet_vdm_c")
    bfn = normalize_model_config(small_config("unet_vdm_c"))
    solver = normalize_model_config(info["small_config_solver_schema"])
    for key in ("net", "input_adapter", "output_adapter", "bayesian_flow", "distribution_factory"):
        assert solver[key] == bfn[key]


YAML_TEXT = """\
# a config in the official style
meta:
  neptune:
  debug: False
model:
  net:
    class_name: "GPT"   # comment after a value
    parameters:
      vocab_size: 27
      n_layer: 2
      dropout: 0.0
      skip: True
      sizes: [1, 2, [3, 4]]
  output_adapter: null
  loss:
    class_name: 'X'
    parameters: {}
optimizer:
  lr: 1e-4
  betas: [0.9,0.98]
training:
  n_training_steps: 1_000_000
  items:
    - 1
    - two
"""

YAML_EXPECTED = {
    "meta": {"neptune": None, "debug": False},
    "model": {
        "net": {"class_name": "GPT", "parameters": {
            "vocab_size": 27, "n_layer": 2, "dropout": 0.0, "skip": True, "sizes": [1, 2, [3, 4]]}},
        "output_adapter": None,
        "loss": {"class_name": "X", "parameters": {}},
    },
    "optimizer": {"lr": 1e-4, "betas": [0.9, 0.98]},
    "training": {"n_training_steps": 1_000_000, "items": [1, "two"]},
}


def test_yaml_subset_parser():
    assert parse_yaml_subset(YAML_TEXT) == YAML_EXPECTED


def test_load_yaml_with_and_without_pyyaml(tmp_path, monkeypatch):
    path = tmp_path / "cfg.yaml"
    path.write_text(YAML_TEXT)
    try:
        import yaml  # noqa: F401
    except ImportError:
        pass
    else:
        assert load_yaml(path) == YAML_EXPECTED
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError
    assert load_yaml(path) == YAML_EXPECTED
