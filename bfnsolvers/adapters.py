"""Adapters for models as they come: each returns a callable ``model(params, t, ...)`` for ``sample()``
and keeps the wrapped model's ``output_type``. Extra arguments (the condition) pass through."""
from __future__ import annotations

from typing import Callable

from torch import Tensor


class _Adapter:
    def __init__(self, model: Callable, name: str):
        if not callable(model):
            raise ValueError(f"model must be callable, got {type(model).__name__}")
        self.model, self.__name__ = model, f"{name}({getattr(model, '__name__', type(model).__name__)})"
        if hasattr(model, "output_type"):
            self.output_type = model.output_type

    def parameters(self):
        """The wrapped module's parameters (so their dtype is what the Denoiser feeds)."""
        return self.model.parameters() if hasattr(self.model, "parameters") else iter(())


class without_time(_Adapter):
    """For a network with no time input (e.g. ProtBFN): model(params, t, *a) = net(params, *a)."""

    def __init__(self, model: Callable):
        super().__init__(model, "without_time")

    def __call__(self, params: Tensor, t: Tensor, *args, **kwargs):
        return self.model(params, *args, **kwargs)


class select_output(_Adapter):
    """For a network returning a tuple or dict: pick ``index`` (an int or key), or apply a callable."""

    def __init__(self, model: Callable, index: int | str | Callable = 0):
        super().__init__(model, "select_output")
        self.index = index

    def __call__(self, params: Tensor, t: Tensor, *args, **kwargs):
        out = self.model(params, t, *args, **kwargs)
        return self.index(out) if callable(self.index) else out[self.index]


class signed_input(_Adapter):
    """For a network reading 2 theta - 1 (or 2 mu - 1) instead of theta: the affine map to [-1, 1]."""

    def __init__(self, model: Callable):
        super().__init__(model, "signed_input")

    def __call__(self, params: Tensor, t: Tensor, *args, **kwargs):
        return self.model(2 * params - 1, t, *args, **kwargs)
