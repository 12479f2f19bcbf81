"""Load official BFN checkpoints (``.pt`` / ``.pth`` state dicts or ``.safetensors``).

``load_checkpoint(path, config=None)`` returns ``(model, process)``: the model
is a :class:`bfnsolvers.networks.BFNNetwork` (``model(params, t)``, eval mode)
and the process one of ``ContinuousBFN``, ``DiscretisedBFN``, ``DiscreteBFN``.

The architecture is recognised from the checkpoint's keys and shapes. Its
hyper-parameters and the process come from ``config`` (a preset name, a path
to an official YAML config, or a config dict in the official BFN or BFN-Solver
schema); without ``config``, the official preset matching the recognised
architecture is used (continuous vs discretised UNetVDM is told apart by the
output size; a discretised UNetVDM is assumed to use 256 bins, so pass
``config="cifar10-discretised-16"`` for the 16-bin model). Every mismatch
raises one :class:`CheckpointError` listing the differences, before anything
is loaded.

Over 400 lines on purpose: the official presets, the key/shape recogniser and the three readers (.pt,
.safetensors, YAML) are one contract with the official code; tests/test_checkpoints.py checks it as a whole.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .networks import BFNNetwork, build_model, load_yaml, normalize_model_config
from .networks.builder import build_adapter
from .processes import BFNProcess, ContinuousBFN, DiscreteBFN, DiscretisedBFN

__all__ = [
    "CheckpointError",
    "PRESETS",
    "infer_preset",
    "load_checkpoint",
    "make_process",
    "preset_config",
    "read_embedded_config",
    "read_state_dict",
    "resolve_checkpoint_path",
    "resolve_config",
]


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not match the requested architecture."""


# --------------------------------------------------------------------------- presets


def entry(class_name: str, **parameters: Any) -> dict:
    """One official-schema config entry, {"class_name": ..., "parameters": {...}} (the training recipes use it too)."""
    return {"class_name": class_name, "parameters": parameters}


def _cifar10(output_height: int, min_variance: float, factory: dict) -> dict:
    return {
        "net": entry(
            "UNetVDM", embedding_dim=128, n_blocks=32, n_attention_heads=1, dropout_prob=0.1,
            norm_groups=32, input_channels=3, use_fourier_features=True,
            attention_everywhere=False, image_size=32,
        ),
        "input_adapter": entry(
            "FourierImageInputAdapter", input_channels=3, input_shape=[32, 32], output_height=3,
            add_pos_feats=False, add_mask=False,
        ),
        "output_adapter": entry("OutputAdapter", input_height=131, output_channels=3, output_height=output_height),
        "bayesian_flow": entry("CtsBayesianFlow", min_variance=min_variance),
        "loss": entry("CtsBayesianFlowLoss", noise_pred=True),
        "distribution_factory": factory,
    }


_MNIST = {
    "net": entry(
        "UNetModel", image_size=28, in_channels=2, model_channels=128, out_channels=128,
        num_res_blocks=2, attention_resolutions=[8, 16], dropout=0.5, channel_mult=[1, 2, 2],
        conv_resample=True, dims=2, num_heads=4, num_heads_upsample=-1, project_input=True, skip=True,
    ),
    "input_adapter": entry(
        "FourierImageInputAdapter", input_channels=1, input_shape=[28, 28], output_height=2, add_pos_feats=False
    ),
    "output_adapter": entry("OutputAdapter", input_height=256, output_channels=1, output_height=1),
    "bayesian_flow": entry("DiscreteBayesianFlow", n_classes=2, max_sqrt_beta=3, discretize=False),
    "loss": entry("DiscreteBayesianFlowLoss"),
    "distribution_factory": entry("BernoulliFactory"),
}

_TEXT8 = {
    "net": entry("GPT", vocab_size=27, n_layer=24, n_head=12, n_embd=768, dropout=0.0, skip=True, bias=True),
    "input_adapter": entry("TextInputAdapter", vocab_size=27, seq_len=256, output_size=768, learn_pos_embedding=False),
    "output_adapter": None,
    "bayesian_flow": entry("DiscreteBayesianFlow", n_classes=27, max_sqrt_beta=0.75),
    "loss": entry("DiscreteBayesianFlowLoss"),
    "distribution_factory": entry("CategoricalFactory"),
}

#: ``model:`` dicts of the official configs (nnaisense/bayesian-flow-networks ``configs/``).
PRESETS: dict[str, dict] = {
    "cifar10-continuous-256": _cifar10(1, 1e-6, entry("DeltaFactory")),
    "cifar10-continuous-16": _cifar10(1, 1e-3, entry("DeltaFactory")),
    "cifar10-discretised-256": _cifar10(2, 1e-6, entry("DiscretizedNormalFactory", num_bins=256, clip=True)),
    "cifar10-discretised-16": _cifar10(2, 1e-3, entry("DiscretizedNormalFactory", num_bins=16, clip=True)),
    "mnist-discrete": _MNIST,
    "text8-discrete": _TEXT8,
}

# Preset used when only the architecture is known: (net class, output height) -> preset.
_DEFAULT_PRESET = {
    ("UNetVDM", 1): "cifar10-continuous-256",
    ("UNetVDM", 2): "cifar10-discretised-256",
    ("UNetModel", 1): "mnist-discrete",
    ("GPT", None): "text8-discrete",
}


def preset_config(name: str) -> dict:
    """A copy of the ``model:`` dict of an official preset."""
    if name not in PRESETS:
        raise ValueError(f"config: unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


# --------------------------------------------------------------------------- reading


def _short_reason(exc: Exception) -> str:
    """One line on why a reader failed (torch's weights-only advice is not relevant here)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if text.startswith("Weights only load failed"):
        text = "not a weights-only torch pickle of tensors"
    return f"{type(exc).__name__}: {text[:200]}"


def _read_file(path: Path) -> Any:
    """Read a .safetensors file or a (weights-only) torch pickle; raise CheckpointError on failure."""
    from safetensors.torch import load_file

    readers = {
        ".safetensors": [("safetensors", lambda p: load_file(p, device="cpu"))],
        ".pt": [("torch", lambda p: torch.load(p, map_location="cpu", weights_only=True))],
    }
    readers[".pth"] = readers[".ckpt"] = readers[".bin"] = readers[".pt"]
    attempts = readers.get(path.suffix.lower(), readers[".pt"] + readers[".safetensors"])
    errors = []
    for kind, read in attempts:
        try:
            return read(str(path))
        except Exception as exc:  # noqa: BLE001 - any reader failure means "not readable as this kind"
            errors.append(f"as {kind}: {_short_reason(exc)}")
    raise CheckpointError(
        f"path: cannot read {str(path)!r} (truncated, corrupt or not a checkpoint); " + "; ".join(errors)
    )


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    )


_NESTED_KEYS = ("ema", "ema_model", "ema_state_dict", "state_dict", "model", "model_state_dict", "net")


def _unwrap(obj: Any, depth: int = 0) -> dict[str, Tensor] | None:
    """Find the state dict: the object itself or one nested under a usual key (EMA first)."""
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping) and depth < 3:
        for key in _NESTED_KEYS:
            found = _unwrap(obj.get(key), depth + 1)
            if found is not None:
                return found
    return None


def _normalise_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Strip DDP / torch.compile prefixes and ensure the official ``net.`` prefix."""
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    if not any(k.startswith("net.") for k in state):
        state = {f"net.{k}": v for k, v in state.items()}
    return state


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a checkpoint file into a state dict with official ``net.``-prefixed keys."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"path: no such checkpoint file {str(path)!r}")
    obj = _read_file(path)
    state = _unwrap(obj)
    if state is None:
        found = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"path: {str(path)!r} is not a checkpoint: expected a dict of tensors, possibly nested under "
            f"one of {list(_NESTED_KEYS)}; found {found}"
        )
    return _normalise_keys(state)


#: Folder of the shipped checkpoints (``load_checkpoint("<name>")``): the installed package's
#: ``_checkpoints`` data folder, or ``<repo>/checkpoints`` in a source checkout.
from ._paths import SHIPPED_DIR  # noqa: E402
#: Safetensors metadata key holding a JSON config written by ``bfnsolvers.train``.
CONFIG_METADATA_KEY = "bfnsolvers_config"


def resolve_checkpoint_path(path: str | Path) -> Path:
    """``path`` itself, or, for a bare name such as ``"digits-continuous"`` that is not an
    existing file, the shipped ``SHIPPED_DIR/<name>.safetensors`` if it exists."""
    p = Path(path)
    if not p.exists() and isinstance(path, str) and p.name == path and p.suffix.lower() not in (
        ".safetensors", ".pt", ".pth", ".ckpt", ".bin"
    ):
        shipped = SHIPPED_DIR / f"{path}.safetensors"
        if shipped.is_file():
            return shipped
    return p


def read_embedded_config(path: str | Path) -> dict | None:
    """The ``model:`` dict stored by ``bfnsolvers.train`` in a safetensors file's metadata
    (key ``bfnsolvers_config``, JSON ``{"model": {...}, ...}``), or None if there is none."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get(CONFIG_METADATA_KEY)
    except Exception:  # noqa: BLE001 - unreadable files are reported by read_state_dict
        return None
    if text is None:
        return None
    try:
        model_cfg = json.loads(text)["model"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"path: {str(path)!r} has an unreadable {CONFIG_METADATA_KEY!r} metadata entry: {exc}")
    if not isinstance(model_cfg, dict):
        raise CheckpointError(f"path: {str(path)!r}: {CONFIG_METADATA_KEY!r} metadata has no 'model' dict")
    return model_cfg


# --------------------------------------------------------------------------- architecture


def _architecture(state: Mapping[str, Tensor]) -> tuple[str, int | None] | None:
    """(net class, output height) recognised from keys and shapes, or None."""
    if "net.lm_head.weight" in state and any(k.startswith("net.input_adapter.pos_embedding") for k in state):
        return "GPT", None
    head = state.get("net.output_adapter.output_projection.weight")
    if "net.conv_in.weight" in state and "net.embed_conditioning.0.weight" in state and head is not None:
        channels = head.shape[1] - state["net.conv_in.weight"].shape[0]
        height = head.shape[0] // channels if channels > 0 and head.shape[0] % channels == 0 else -1
        return "UNetVDM", height
    if "net.time_embed.0.weight" in state and "net.input_blocks.0.0.weight" in state and head is not None:
        return "UNetModel", head.shape[0]
    return None


def _config_architecture(model_cfg: dict) -> tuple[str, int | None]:
    name = model_cfg["net"].get("class_name")
    out = model_cfg.get("output_adapter")
    height = None if name == "GPT" else (out or {}).get("parameters", {}).get("output_height")
    return name, height


def _describe(arch: tuple[str, int | None]) -> str:
    name, height = arch
    if name == "UNetVDM":
        return {1: "UNetVDM, continuous (eps output)", 2: "UNetVDM, discretised (eps mean + log-std output)"}.get(
            height, f"UNetVDM with output height {height}"
        )
    return {"UNetModel": "UNetModel (binarised MNIST)", "GPT": "GPT (text)"}.get(name, name)


def infer_preset(state: Mapping[str, Tensor]) -> str:
    """Name of the official preset whose architecture matches a (``net.``-prefixed) state dict."""
    arch = _architecture(state)
    if arch is None or arch not in _DEFAULT_PRESET:
        what = "an unknown architecture" if arch is None else _describe(arch)
        raise CheckpointError(
            f"cannot infer the configuration of a checkpoint with {what} (first keys: {list(state)[:5]}); "
            f"pass config= (a preset: {', '.join(PRESETS)}; an official YAML path; or a config dict)"
        )
    return _DEFAULT_PRESET[arch]


def resolve_config(config: str | Path | Mapping | None, state: Mapping[str, Tensor] | None = None) -> dict:
    """Turn a preset name, YAML path or config dict into a ``model:`` dict.

    With ``config=None`` the preset is inferred from ``state``.
    """
    if config is None:
        if state is None:
            raise ValueError("config: give a preset, YAML path or dict, or a state dict to infer it from")
        return preset_config(infer_preset(state))
    if isinstance(config, Mapping):
        return normalize_model_config(dict(config))
    if isinstance(config, (str, Path)):
        if isinstance(config, str) and config in PRESETS:
            return preset_config(config)
        path = Path(config)
        if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
            if not path.is_file():
                raise ValueError(f"config: no such config file {str(path)!r}")
            if path.suffix.lower() == ".json":
                return normalize_model_config(json.loads(path.read_text()))
            return normalize_model_config(load_yaml(path))
        raise ValueError(f"config: unknown preset {str(config)!r}; valid presets: {', '.join(PRESETS)}")
    raise ValueError(f"config: expected a preset name, YAML path or dict, got {type(config).__name__}")


# --------------------------------------------------------------------------- process


def make_process(model_cfg: dict) -> BFNProcess:
    """The bfnsolvers process for a ``model:`` dict; missing flow/factory entries come from the matching preset."""
    flow, factory = model_cfg.get("bayesian_flow"), model_cfg.get("distribution_factory")
    if flow is None or (factory is None and flow.get("class_name") == "CtsBayesianFlow"):
        preset = PRESETS.get(_DEFAULT_PRESET.get(_config_architecture(model_cfg), ""))
        if preset is None:
            raise ValueError("config: no 'bayesian_flow' given and no official preset matches the network")
        flow = flow or preset["bayesian_flow"]
        factory = factory or preset["distribution_factory"]
    name, params = flow.get("class_name"), flow.get("parameters") or {}
    try:
        if name == "CtsBayesianFlow":
            sigma_1 = math.sqrt(float(params["min_variance"]))
            if (factory or {}).get("class_name") == "DiscretizedNormalFactory":
                return DiscretisedBFN(sigma_1, int(factory["parameters"]["num_bins"]))
            return ContinuousBFN(sigma_1)
        if name == "DiscreteBayesianFlow":
            return DiscreteBFN(float(params["max_sqrt_beta"]) ** 2, int(params["n_classes"]))
    except KeyError as exc:
        raise ValueError(f"config: {name} / distribution_factory parameters lack {exc}") from exc
    raise ValueError(f"config: unsupported bayesian_flow {name!r}; expected CtsBayesianFlow or DiscreteBayesianFlow")


# --------------------------------------------------------------------------- loading


def _listing(title: str, items: list[str], limit: int = 12) -> str:
    shown = "\n    ".join(items[:limit])
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {title} ({len(items)}):\n    {shown}{more}"


def _optional_keys(model: BFNNetwork) -> set[str]:
    """Fixed (non-learned) buffers that a checkpoint may omit: they are rebuilt identically."""
    buffers = dict(model.net.input_adapter.named_buffers(recurse=False))
    return {f"net.input_adapter.{name}" for name in ("pos_feats", "pos_embedding") if name in buffers}


def _rebuilt_buffers(model_cfg: dict, skeleton: BFNNetwork, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Values of the fixed buffers the checkpoint omits, computed by a real input adapter."""
    missing = _optional_keys(skeleton) - set(state)
    if not missing:
        return {}
    with torch.device("cpu"):
        adapter = build_adapter(model_cfg["input_adapter"], "input_adapter")
    values = {f"net.input_adapter.{k}": v for k, v in adapter.state_dict().items()}
    return {k: values[k] for k in missing}


def _differences(expected: Mapping[str, Tensor], found: Mapping[str, Tensor], optional: set[str]) -> list[str]:
    missing = [k for k in expected if k not in found and k not in optional]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k}: expected {list(expected[k].shape)}, found {list(found[k].shape)}"
        for k in expected
        if k in found and found[k].shape != expected[k].shape
    ]
    dtypes = [
        f"{k}: expected a floating-point tensor, found {found[k].dtype}"
        for k in expected
        if k in found and expected[k].is_floating_point() and not found[k].is_floating_point()
    ]
    parts = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", shapes), ("dtype mismatches", dtypes)):
        if items:
            parts.append(_listing(title, items))
    return parts


def load_checkpoint(
    path: str | Path,
    config: str | Path | Mapping | None = None,
    *,
    device: str | torch.device = "cpu",
) -> tuple[BFNNetwork, BFNProcess]:
    """Load an official BFN checkpoint; return ``(model, process)``.

    Args:
        path: ``.pt`` / ``.pth`` (a state dict, possibly nested under ``ema`` /
            ``model`` / ``state_dict`` ...) or ``.safetensors``; or the bare name of
            a shipped checkpoint (``"digits-continuous"`` -> ``SHIPPED_DIR/
            digits-continuous.safetensors``: ``<repo>/checkpoints`` or the wheel's copy).
        config: preset name (see ``PRESETS``), path to an official YAML config,
            or a config dict (official BFN or BFN-Solver schema). ``None``: the
            config stored in the file's metadata by ``bfnsolvers.train`` if any,
            else the official preset of the architecture recognised in the file.
        device: where to put the model.

    Note:
        sigma_1 / beta_1 cannot be read from weights. They come from
        ``config`` (its ``bayesian_flow``); when ``config`` is None or has no
        ``bayesian_flow``, from the official preset of the recognised
        architecture (a discretised UNetVDM then gets the 256-bin preset).

    Raises:
        CheckpointError: unreadable file, or a checkpoint whose keys / shapes do
            not match the configured network (all differences are listed).
        ValueError: an invalid ``config``.
    """
    path = resolve_checkpoint_path(path)
    state = read_state_dict(path)
    embedded = read_embedded_config(path) if config is None else None
    model_cfg = resolve_config(config if embedded is None else embedded, state)
    found, wanted = _architecture(state), _config_architecture(model_cfg)
    source = f"config {config!r}" if isinstance(config, (str, Path)) else "config"
    if embedded is not None:
        source = f"its embedded {CONFIG_METADATA_KEY!r} config"
    elif config is None:
        source = f"preset {infer_preset(state)!r}"
    header = f"checkpoint {str(path)!r} does not match {source}"
    if found is not None and found != wanted:
        header += f": the checkpoint holds {_describe(found)}, the config describes {_describe(wanted)}"
    elif config is None and embedded is None:
        header += " (a network of another size needs config=: an official YAML path or config dict)"
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        skeleton = build_model(model_cfg)
    diffs = _differences(skeleton.state_dict(), state, _optional_keys(skeleton))
    if diffs or (found is not None and found != wanted):
        raise CheckpointError("\n".join([header, *diffs]))
    process = make_process(model_cfg)
    classes = getattr(process, "num_classes", None)
    if classes is not None and classes != getattr(skeleton, "num_classes", classes):
        raise ValueError(
            f"config: bayesian_flow has {classes} classes but the network outputs {skeleton.num_classes}"
        )
    full = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    full.update(_rebuilt_buffers(model_cfg, skeleton, state))
    skeleton.load_state_dict(full, strict=True, assign=True)  # the checkpoint's tensors become the weights
    return skeleton.to(device).eval(), process
