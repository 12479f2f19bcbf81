"""Export the EMA model as an official-layout ``.safetensors`` checkpoint with its config in the metadata."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_write
from ..checkpoints import CONFIG_METADATA_KEY
from .build import process_hparams
from .config import TrainConfig


def export_checkpoint(model: nn.Module, config: TrainConfig, path: str | Path, *, step: int,
                      extra: dict | None = None) -> Path:
    """Write ``model``'s weights (official ``net.`` keys, float32) as safetensors, atomically.

    Metadata ``bfnsolvers_config``: JSON ``{"model": official model dict, "process":
    process hyper-parameters, "train": TrainConfig, "step": step, ...extra}``.
    """
    from safetensors.torch import save_file

    from ..checkpoints import make_process
    from ..networks import normalize_model_config

    model_cfg = normalize_model_config(config.model)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    bad = [k for k in state if not k.startswith("net.")]
    if bad:
        raise ValueError(f"model: expected a wrapped network with 'net.'-prefixed keys, got {bad[:3]}")
    meta = {"format": "bfnsolvers-checkpoint-1", "model": model_cfg,
            "process": process_hparams(make_process(model_cfg)), "train": config.to_dict(), "step": step}
    meta.update(extra or {})
    path = Path(path)
    atomic_write(path, lambda p: save_file(state, p, metadata={CONFIG_METADATA_KEY: json.dumps(meta),
                                                                  "format": "pt"}))
    return path
