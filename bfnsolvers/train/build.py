"""What a training run is built from: the network (initialised as the official code does), the process, the data."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .config import DATA_KINDS, TrainConfig


def official_init(model: nn.Module) -> nn.Module:
    """Initialise a fresh network as the official BFN code does.

    UNetVDM: zero the last conv of every residual block, of every attention block
    and of ``conv_out`` (each block starts as the identity). GPT (nanoGPT): all
    Linear / Embedding weights N(0, 0.02^2), biases 0, residual projections
    ``c_proj`` N(0, (0.02 / sqrt(2 n_layer))^2).
    """
    from ..networks.gpt import GPT
    from ..networks.unet_vdm import AttentionBlock, ResnetBlock, UNetVDM

    net = getattr(model, "net", model)
    if isinstance(net, UNetVDM):
        for m in net.modules():
            if isinstance(m, ResnetBlock):
                last = m.net2[-1]
            elif isinstance(m, AttentionBlock):
                last = m.layers[-1]
            else:
                continue
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        nn.init.zeros_(net.conv_out[-1].weight)
        nn.init.zeros_(net.conv_out[-1].bias)
    elif isinstance(net, GPT):
        for m in net.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)
        n_layer = len(net.transformer.h)
        for name, p in net.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
    return model


def process_hparams(process: Any) -> dict:
    """JSON-able description of a process: class name and hyper-parameters."""
    return {"class": type(process).__name__, **process.hparams()}


def _build(config: TrainConfig):
    from ..checkpoints import make_process
    from ..networks import build_model, normalize_model_config

    model_cfg = normalize_model_config(config.model)
    return build_model(model_cfg), make_process(model_cfg), model_cfg


# --------------------------------------------------------------------------- data


def train_sampler(config: TrainConfig) -> Callable[[int, torch.Generator], Tensor]:
    """``sample(batch_size, generator)`` drawing a training batch (with replacement)."""
    from ..data import load_digits_images, load_text_tokens, random_text_windows

    if config.data == "digits":
        images = load_digits_images("train")

        def digits(batch: int, gen: torch.Generator) -> Tensor:
            return images[torch.randint(0, len(images), (batch,), generator=gen)]

        return digits
    tokens = load_text_tokens("train")
    return lambda batch, gen: random_text_windows(tokens, config.seq_len, batch, gen)


def evaluation_set(data: str, n: int = 256, seq_len: int = 64) -> Tensor:
    """The fixed evaluation set: the first ``n`` digits test images, or ``n`` text test
    windows of ``seq_len`` whose starts are evenly spaced over the test split."""
    from ..data import DIGITS_NUM_TEST, load_digits_images, load_text_tokens

    if data == "digits":
        if not 1 <= n <= DIGITS_NUM_TEST:
            raise ValueError(f"n: expected 1..{DIGITS_NUM_TEST} digits test items, got {n}")
        return load_digits_images("test")[:n]
    if data == "text":
        tokens = load_text_tokens("test")
        if n < 1 or seq_len < 1 or seq_len > len(tokens):
            raise ValueError(f"n, seq_len: expected positive values with seq_len <= {len(tokens)}, got {n}, {seq_len}")
        starts = torch.linspace(0, len(tokens) - seq_len, n, dtype=torch.float64).long()
        return tokens[starts[:, None] + torch.arange(seq_len)]
    raise ValueError(f"data: expected one of {DATA_KINDS}, got {data!r}")
