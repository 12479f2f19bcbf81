"""Reading official BFN / BFN-Solver configs into one normalised ``model:`` dict.

Accepted inputs: the parsed official YAML (``{"model": {...}, ...}``), its
``model:`` dict itself (``net`` / ``input_adapter`` / ``output_adapter`` with
``class_name`` + ``parameters``, optionally ``bayesian_flow`` and
``distribution_factory``), or the BFN-Solver schema (``net.name``,
``net.backbone``, ``net.input_adapter.name``, ..., plus ``bayesian_flow`` and
``data``). YAML files are read with PyYAML when it is installed, else with a
small parser for the subset the official configs use.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

_FLOAT_RE = re.compile(r"^[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d+)?$")
_INT_RE = re.compile(r"^[-+]?\d[\d_]*$")


def _scalar(text: str) -> Any:
    """Convert one YAML scalar token to a Python value."""
    s = text.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if _INT_RE.match(s):
        return int(s.replace("_", ""))
    if _FLOAT_RE.match(s):
        return float(s.replace("_", ""))
    if s.lower() in (".inf", "+.inf", "-.inf", ".nan"):
        return float(s.replace(".", "", 1))
    return s


def _split_flow(body: str) -> list[str]:
    """Split the inside of a flow collection at top-level commas."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(body):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return [p for p in (q.strip() for q in parts) if p]


def _value(text: str) -> Any:
    """Parse an inline value: flow list, flow mapping or scalar."""
    s = text.strip()
    if s.startswith("[") and s.endswith("]"):
        return [_value(p) for p in _split_flow(s[1:-1])]
    if s.startswith("{") and s.endswith("}"):
        out = {}
        for part in _split_flow(s[1:-1]):
            key, _, val = part.partition(":")
            out[_scalar(key)] = _value(val)
        return out
    return _scalar(s)


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def parse_yaml_subset(text: str) -> Any:
    """Parse the YAML subset of the official configs (block mappings/lists, flow values)."""
    lines = [(len(ln) - len(ln.lstrip(" ")), ln.strip()) for ln in map(_strip_comment, text.splitlines())]
    lines = [item for item in lines if item[1] and item[1] != "---"]

    def is_item(i: int) -> bool:
        return lines[i][1] == "-" or lines[i][1].startswith("- ")

    def block(i: int, indent: int) -> tuple[Any, int]:
        """Parse the block starting at line i if it is indented at least ``indent``."""
        if i >= len(lines) or lines[i][0] < indent:
            return None, i
        level = lines[i][0]
        if is_item(i):
            items: list[Any] = []
            while i < len(lines) and lines[i][0] == level and is_item(i):
                rest = lines[i][1][1:].strip()
                if rest:
                    items.append(_value(rest))
                    i += 1
                else:
                    child, i = block(i + 1, level + 1)
                    items.append(child)
            return items, i
        mapping: dict[Any, Any] = {}
        while i < len(lines) and lines[i][0] == level and not is_item(i):
            key, sep, rest = lines[i][1].partition(":")
            if not sep:
                raise ValueError(f"config: cannot parse YAML line {lines[i][1]!r} (expected 'key: value')")
            if rest.strip():
                mapping[_scalar(key)] = _value(rest)
                i += 1
            elif i + 1 < len(lines) and lines[i + 1][0] == level and is_item(i + 1):
                mapping[_scalar(key)], i = block(i + 1, level)  # list at the key's own indentation
            else:
                mapping[_scalar(key)], i = block(i + 1, level + 1)
        return mapping, i

    result, end = block(0, 0)
    if end != len(lines):
        raise ValueError(f"config: cannot parse YAML near line {lines[end][1]!r} (bad indentation)")
    return result


def _numeric_strings_to_numbers(obj: Any) -> Any:
    """PyYAML reads '1e-6' as a string (YAML 1.1); turn such strings into floats."""
    if isinstance(obj, dict):
        return {k: _numeric_strings_to_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_numeric_strings_to_numbers(v) for v in obj]
    if isinstance(obj, str) and _FLOAT_RE.match(obj.strip()):
        return _scalar(obj)
    return obj


def load_yaml(path: str | Path) -> Any:
    """Read a YAML config file (PyYAML if installed, else the subset parser)."""
    text = Path(path).read_text()
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        return parse_yaml_subset(text)
    return _numeric_strings_to_numbers(yaml.safe_load(text))


def _solver_adapter(cfg: dict | None) -> dict | None:
    if cfg is None:
        return None
    params = {k: v for k, v in cfg.items() if k != "name"}
    return {"class_name": cfg.get("name"), "parameters": params}


def _from_solver_schema(cfg: dict) -> dict:
    """Convert the BFN-Solver schema (net.name/backbone, bayesian_flow, data) to a model dict."""
    net = cfg["net"]
    model: dict[str, Any] = {
        "net": {"class_name": net.get("name"), "parameters": dict(net.get("backbone") or {})},
        "input_adapter": _solver_adapter(net.get("input_adapter")),
        "output_adapter": _solver_adapter(net.get("output_adapter")),
    }
    flow = cfg.get("bayesian_flow") or {}
    data = cfg.get("data") or {}
    if "min_variance" in flow:
        model["bayesian_flow"] = {"class_name": "CtsBayesianFlow", "parameters": dict(flow)}
        height = (model["output_adapter"] or {}).get("parameters", {}).get("output_height", 1)
        if height == 2:
            factory = {"class_name": "DiscretizedNormalFactory",
                       "parameters": {"num_bins": data.get("num_bins", 256), "clip": True}}
        else:
            factory = {"class_name": "DeltaFactory", "parameters": {}}
        model["distribution_factory"] = factory
    elif "n_classes" in flow:
        model["bayesian_flow"] = {"class_name": "DiscreteBayesianFlow", "parameters": dict(flow)}
        name = "BernoulliFactory" if flow["n_classes"] == 2 else "CategoricalFactory"
        model["distribution_factory"] = {"class_name": name, "parameters": {}}
    return model


def normalize_model_config(cfg: Any) -> dict:
    """Return a deep copy of the ``model:`` dict (official BFN schema) of any accepted config."""
    if not isinstance(cfg, dict):
        raise ValueError(f"config: expected a dict in the official config schema, got {type(cfg).__name__}")
    if isinstance(cfg.get("model"), dict):
        cfg = cfg["model"]
    net = cfg.get("net")
    if not isinstance(net, dict):
        raise ValueError("config: expected a 'net' entry (official schema: model.net.class_name/parameters)")
    if "class_name" in net:
        model = copy.deepcopy(cfg)
    elif "name" in net:
        model = _from_solver_schema(copy.deepcopy(cfg))
    else:
        raise ValueError("config: 'net' needs 'class_name' (BFN schema) or 'name' (BFN-Solver schema)")
    model["net"].setdefault("parameters", {})
    for key in ("input_adapter", "output_adapter"):
        if model.get(key) is not None:
            model[key].setdefault("parameters", {})
            model[key]["parameters"] = model[key]["parameters"] or {}
    model["net"]["parameters"] = model["net"]["parameters"] or {}
    return model
