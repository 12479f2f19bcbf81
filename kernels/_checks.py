"""Input validation shared by the dispatch functions (ValueError names the argument)."""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..constants import T_MIN  # BFN time below which the data prediction is 0 (the processes' t_min)


def check_tensor(name: str, t: object) -> torch.Tensor:
    """`t` must be a floating-point torch.Tensor."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {t.dtype}")
    return t


def check_like(name: str, t: Optional[object], ref_name: str, ref: torch.Tensor) -> Optional[torch.Tensor]:
    """Optional tensor `t` must be float, on ref's device, with exactly ref's shape."""
    if t is None:
        return None
    check_tensor(name, t)
    assert isinstance(t, torch.Tensor)
    if t.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)} but {ref_name} has shape {tuple(ref.shape)}")
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")
    return t


def check_classes(name: str, t: torch.Tensor) -> int:
    """Last dimension of `t` is the number of classes K >= 2; returns K."""
    if t.dim() == 0 or t.shape[-1] < 2:
        raise ValueError(f"{name} must have a last (class) dimension K >= 2, got shape {tuple(t.shape)}")
    return int(t.shape[-1])


def check_scalar(name: str, v: object, *, positive: bool = False, nonneg: bool = False) -> float:
    """A finite Python/0-dim scalar, returned as float."""
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(v.shape)}")
        v = v.item()
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real scalar, got {v!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"{name} must be finite, got {f}")
    if positive and f <= 0:
        raise ValueError(f"{name} must be > 0, got {f}")
    if nonneg and f < 0:
        raise ValueError(f"{name} must be >= 0, got {f}")
    return f


def check_gamma(gamma: object) -> float:
    """gamma = 1 - sigma_1^(2t) must lie in [0, 1)."""
    g = check_scalar("gamma", gamma)
    if not 0.0 <= g < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {g}")
    return g


def check_num_bins(num_bins: object) -> int:
    """K (number of bins) is an int >= 2."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")
    return num_bins


def zero_prediction(gamma: float, t: Optional[float]) -> bool:
    """True where the data prediction is defined as 0: gamma == 0 or t < t_min."""
    return gamma <= 0.0 or (t is not None and t < T_MIN)


def eps_scale(gamma: float) -> float:
    """sqrt((1 - gamma) / gamma), the eps -> x coefficient (0 when gamma == 0; unused then)."""
    return math.sqrt((1.0 - gamma) / gamma) if gamma > 0 else 0.0
