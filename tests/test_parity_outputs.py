"""Output distributions (network output -> p_O) against the official code's, on the test-vector cases."""
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from bfnsolvers import ContinuousBFN, DiscreteBFN, DiscretisedBFN, load_checkpoint
from helpers import rel_err


def load(testvectors, name):
    meta = json.loads((testvectors / f"{name}.json").read_text())
    cfg = meta.get("small_config_bfn_schema") or meta["settings"]["256bins"]["small_config_bfn_schema"]
    model, _ = load_checkpoint(testvectors / f"{name}.state_dict.safetensors", {"model": cfg} if "net" in cfg else cfg)
    return model, load_file(str(testvectors / f"{name}.cases.safetensors"))


def rel(a, b):
    return rel_err(a, b, floor=1e-30)


@pytest.mark.parametrize("tag,min_variance,bins", [("256bins", 1e-6, 256), ("16bins", 1e-3, 16)])
def test_continuous_and_discretised_outputs(testvectors, tag, min_variance, bins):
    model_c, c = load(testvectors, "unet_vdm_c")
    mu, t = c["input_mean"], c["t"][:, 0, 0, 0]
    x_hat = ContinuousBFN(math.sqrt(min_variance)).output_distribution(model_c(mu, t), mu, t).mean
    assert rel(x_hat, c[f"{tag}.x_hat"].reshape(mu.shape)) < 1e-5

    model_d, d = load(testvectors, "unet_vdm_d")
    mu, t = d["input_mean"], d["t"][:, 0, 0, 0]
    dist = DiscretisedBFN(math.sqrt(min_variance), bins).output_distribution(model_d(mu, t), mu, t)
    shape = mu.shape + (bins,)
    assert (dist.probs - d[f"{tag}.probs"].reshape(shape)).abs().max() < 1e-5
    assert rel(dist.mean, d[f"{tag}.mean"].reshape(mu.shape)) < 1e-5
    assert torch.equal(dist.mode, d[f"{tag}.mode"].reshape(mu.shape))
    torch.testing.assert_close(dist.centres, d[f"{tag}.class_centres"])


def test_binary_mnist_output(testvectors):
    model, c = load(testvectors, "unet_improved_mnist")
    theta = c["input_params_sampling_layout"].squeeze(-2)              # (B, H, W, 2) = [P0, P1]
    t = c["t"][:, 0, 0, 0]
    dist = DiscreteBFN(9.0, 2).output_distribution(model(theta, t), torch.zeros_like(theta), t)
    assert (dist.probs - c["probs"].reshape(theta.shape)).abs().max() < 1e-5
    assert torch.equal(dist.mode.float(), c["mode"].reshape(theta.shape[:-1]).float())


def test_text_output(testvectors):
    model, c = load(testvectors, "gpt_text8")
    theta, t = c["input_probs"], c["t"][:, 0]
    dist = DiscreteBFN(0.75 ** 2, 27).output_distribution(model(theta, t), theta, t)
    assert (dist.probs - c["probs"]).abs().max() < 1e-5
    assert torch.equal(dist.mode, c["mode"])
