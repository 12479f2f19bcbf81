"""Build official BFN networks from the ``model:`` dict of an official config."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from .adapters import FourierImageInputAdapter, OutputAdapter, TextInputAdapter
from .config import normalize_model_config
from .gpt import GPT
from .unet_improved import UNetModel
from .unet_vdm import UNetVDM
from .wrappers import BFNNetwork, wrap_network

NETWORKS: dict[str, type[nn.Module]] = {"UNetVDM": UNetVDM, "UNetModel": UNetModel, "GPT": GPT}
ADAPTERS: dict[str, type[nn.Module]] = {
    "FourierImageInputAdapter": FourierImageInputAdapter,
    "TextInputAdapter": TextInputAdapter,
    "OutputAdapter": OutputAdapter,
}


def _make(registry: dict[str, type[nn.Module]], entry: Any, where: str, **extra: Any) -> nn.Module:
    """Instantiate ``registry[entry.class_name](**entry.parameters, **extra)`` with checked arguments."""
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ValueError(f"model_cfg[{where!r}]: expected a dict with 'class_name' and 'parameters'")
    name = entry["class_name"]
    if name not in registry:
        raise ValueError(f"model_cfg[{where!r}].class_name: unknown {name!r}; expected one of {sorted(registry)}")
    cls = registry[name]
    params = dict(entry.get("parameters") or {})
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"} - set(extra)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(
            f"model_cfg[{where!r}].parameters: unknown {unknown} for {name}; expected some of {sorted(accepted)}"
        )
    try:
        return cls(**params, **extra)
    except TypeError as exc:
        raise ValueError(f"model_cfg[{where!r}]: cannot build {name}: {exc}") from exc


def build_adapter(adapter_cfg: dict | None, where: str = "input_adapter") -> nn.Module | None:
    """Build one adapter from its ``{class_name, parameters}`` entry (None stays None)."""
    if adapter_cfg is None and where == "output_adapter":
        return None
    return _make(ADAPTERS, adapter_cfg, where)


def build_network(model_cfg: dict) -> nn.Module:
    """Build the bare official network (adapters included), in eval mode.

    ``model_cfg`` is the ``model:`` dict of an official YAML config (or a whole
    config, or the BFN-Solver schema). Its ``state_dict()`` equals the official
    checkpoint's with the ``net.`` prefix stripped.
    """
    model = normalize_model_config(model_cfg)
    input_adapter = build_adapter(model.get("input_adapter"), "input_adapter")
    output_adapter = build_adapter(model.get("output_adapter"), "output_adapter")
    if output_adapter is None and model["net"].get("class_name") in ("UNetVDM", "UNetModel"):
        raise ValueError(f"model_cfg['output_adapter']: {model['net'].get('class_name')} needs an output adapter")
    net = _make(NETWORKS, model["net"], "net", input_adapter=input_adapter, output_adapter=output_adapter)
    return net.eval()


def build_model(model_cfg: dict) -> BFNNetwork:
    """Build the official network and wrap it as ``model(params, t)`` (eval mode).

    The result's ``state_dict()`` has the keys of an official EMA checkpoint
    (every key prefixed ``net.``).
    """
    return wrap_network(build_network(model_cfg)).eval()
