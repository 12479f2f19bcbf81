"""The model interface and the adapter that gives solvers a data prediction.

A BFN model is any callable ``model(params, t) -> output`` where ``params`` are the
input-distribution parameters (mu, or theta = softmax(y)), ``t`` has shape (B,),
and ``output`` is read according to ``model.output_type`` (default: the process's,
e.g. "eps" for continuous data, "logits" for discrete data).
"""
from __future__ import annotations

import copy
from typing import Callable, Union

import torch
from torch import Tensor

from ._checks import is_real
from .outputs import guide, mask_classes, temper
from .processes import BFNProcess
from .processes.base import _HOST_TIME, HostTime, TimeLike, as_time


def module_dtype(model: Callable) -> torch.dtype | None:
    """The floating dtype of a module's parameters (what its calls must be fed), or None."""
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        for p in parameters():
            if isinstance(p, Tensor) and p.is_floating_point():
                return p.dtype
    return None


Cond = Union[Tensor, tuple, dict, None]


def check_cond(cond: Cond, batch: int, name: str = "cond") -> Cond:
    """A condition is a tensor (passed positionally), a tuple (passed as extra positional
    arguments) or a dict (passed as keywords) whose tensors all have the batch size first."""
    if cond is None:
        return None
    if isinstance(cond, Tensor):
        leaves = [cond]
    elif isinstance(cond, tuple):
        leaves = list(cond)
    elif isinstance(cond, dict):
        leaves = list(cond.values())
    else:
        raise ValueError(f"{name} must be a tensor, a tuple or a dict of tensors, got {type(cond).__name__}")
    for leaf in leaves:
        if isinstance(leaf, Tensor) and (leaf.dim() == 0 or leaf.shape[0] != batch):
            raise ValueError(f"{name}: every tensor needs the batch size {batch} first, got shape {tuple(leaf.shape)}")
    return cond


def _map_cond(fn: Callable[[Tensor, Tensor], Tensor], a: Cond, b: Cond) -> Cond:
    if isinstance(a, Tensor):
        return fn(a, b)
    if isinstance(a, tuple):
        return tuple(fn(x, y) if isinstance(x, Tensor) else x for x, y in zip(a, b))
    return {k: fn(v, b[k]) if isinstance(v, Tensor) else v for k, v in a.items()}


def _same_structure(a: Cond, b: Cond) -> bool:
    if isinstance(a, Tensor):
        return isinstance(b, Tensor) and a.shape == b.shape
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(
            not isinstance(x, Tensor) or (isinstance(y, Tensor) and x.shape == y.shape) for x, y in zip(a, b))
    return isinstance(b, dict) and a.keys() == b.keys() and all(
        not isinstance(v, Tensor) or (isinstance(b[k], Tensor) and v.shape == b[k].shape) for k, v in a.items())


def call_model(model: Callable, params: Tensor, t: Tensor, cond: Cond) -> Tensor:
    """model(params, t), model(params, t, cond), model(params, t, *cond) or model(params, t, **cond)."""
    if cond is None:
        return model(params, t)
    if isinstance(cond, tuple):
        return model(params, t, *cond)
    if isinstance(cond, dict):
        return model(params, t, **cond)
    return model(params, t, cond)


class Denoiser:
    """x0_hat(z, t) for the solvers, from a model and its process; counts network calls (NFE).

    ``nfe`` counts data predictions (what a solver spends), ``forward_batches`` the network's forward
    passes with their batch sizes (classifier-free guidance spends one pass of twice the batch, or
    two passes with the model's own null condition). The state may be kept in another dtype than
    the model's (e.g. float64 for the reference solver): inputs are cast to the module's parameter
    dtype at the call, outputs back to the state's. Every raw output is checked for finiteness: the
    first at once, later ones by a flag per call read by ``check_finite`` (no host sync per step).
    Options (set with ``configure``): cond / uncond / guidance, temperature, class_mask, constraint.
    """

    def __init__(self, model: Callable[[Tensor, Tensor], Tensor], process: BFNProcess, output_type: str | None = None):
        if not callable(model):
            raise ValueError(f"model must be callable as model(params, t), got {type(model).__name__}")
        if not isinstance(process, BFNProcess):
            raise ValueError(f"process must be a BFNProcess, got {type(process).__name__}")
        self.model, self.process = model, process
        self.output_type = output_type or getattr(model, "output_type", process.default_output_type)
        self.call_dtype = module_dtype(model)
        self.cond: Cond = None
        self.uncond: Cond = None
        self.guidance = 0.0
        self.temperature = 1.0
        self.class_mask: Tensor | None = None
        self.constraint: Callable | None = None
        self.nfe = 0
        self.forward_batches: list[int] = []
        self._finite: list[tuple[float | Tensor, tuple[Tensor, Tensor]]] = []
        self._mask_cache: tuple[Tensor, Tensor] | None = None
        self._times: dict[tuple, tuple[Tensor, HostTime]] = {}

    def fork(self) -> "Denoiser":
        """A copy with its own call counters and finiteness record (one per ``sample()`` call, so a
        Denoiser shared between threads counts each call's NFE exactly)."""
        other = copy.copy(self)
        other.nfe, other.forward_batches, other._finite, other._mask_cache, other._times = 0, [], [], None, {}
        return other

    def configure(self, batch: int, *, cond: Cond = None, uncond: Cond = None, guidance: float = 0.0,
                  temperature: float = 1.0, class_mask: Tensor | None = None,
                  constraint: Callable | None = None) -> "Denoiser":
        """Check and set the per-run options (in place; call on a fork).

        uncond: the unconditional value for guidance, with cond's structure; None means the model's
        own null condition (the model is then called without cond for the unconditional half)."""
        self.cond = check_cond(cond, batch)
        if uncond is not None:
            if cond is None:
                raise ValueError("uncond is given without cond")
            check_cond(uncond, batch, "uncond")
            if not _same_structure(cond, uncond):
                raise ValueError("uncond must have cond's structure (type, keys and tensor shapes)")
        self.uncond = uncond
        if not (is_real(guidance) and guidance >= 0):
            raise ValueError(f"guidance must be a finite number >= 0, got {guidance!r}")
        if guidance and cond is None:
            raise ValueError("guidance needs cond (the conditional value), and optionally uncond")
        self.guidance = float(guidance)
        if not (is_real(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
        self.temperature = float(temperature)
        if class_mask is not None:
            if not isinstance(class_mask, Tensor) or class_mask.dtype != torch.bool:
                raise ValueError("class_mask must be a bool tensor, True where a class is allowed, broadcastable to (..., K)")
            if not bool(class_mask.any(-1).all()):
                raise ValueError("class_mask must allow at least one class everywhere")
        self.class_mask, self._mask_cache = class_mask, None
        if constraint is not None and not callable(constraint):
            raise ValueError(f"constraint must be callable as constraint(z, t) -> z, got {type(constraint).__name__}")
        self.constraint = constraint
        return self

    def _describe(self) -> str:
        name = getattr(self.model, "__name__", None) or type(self.model).__name__
        return f"model {name} ({self.process!r}, output_type {self.output_type!r})"

    def _record(self, output: Tensor, t: Tensor, host: HostTime | None) -> None:
        """Keep the output's (min, max), one pass (both propagate NaN and are finite iff every element is);
        the first call's is read at once, the rest by ``check_finite`` (no host sync per step)."""
        if output.numel() and output.is_floating_point():
            extremes = tuple(torch.aminmax(output))
        else:                                         # integer or empty outputs are finite
            extremes = (output.new_zeros((), dtype=torch.float32),) * 2
        if self.nfe == 1 and not bool(torch.isfinite(torch.stack(extremes)).all()):
            raise FloatingPointError(f"{self._describe()} returned non-finite values at its first call, t = "
                                     f"{float(t.flatten()[0]):.6g}; check the model, its dtype and its inputs")
        if len(self._finite) >= 1024:                 # bounded record: one host sync per 1024 calls
            self.check_finite()
            self._finite.clear()
        self._finite.append((t.flatten()[:1] if host is None else host.value, extremes))

    def check_finite(self) -> None:
        """Raise if any call so far returned NaN or inf, naming the first such time."""
        if not self._finite:
            return
        extremes = torch.stack([torch.stack(e).float() for _, e in self._finite])
        flags = torch.isfinite(extremes).all(-1).cpu()
        if bool(flags.all()):
            return
        first = int((~flags).nonzero()[0])
        t = float(self._finite[first][0])
        raise FloatingPointError(f"{self._describe()} returned non-finite values at call {first + 1} of "
                                 f"{len(self._finite)}, t = {t:.6g}; check the model, its dtype and its inputs")

    def _forward(self, params: Tensor, t: Tensor, cond: Cond) -> Tensor:
        self.forward_batches.append(params.shape[0])
        output = call_model(self.model, params, t, cond)
        if not isinstance(output, Tensor):
            raise ValueError(f"model must return a tensor, got {type(output).__name__} "
                             f"(wrap it with bfnsolvers.adapters.select_output to pick one element)")
        return output

    def raw_output(self, z: Tensor, t: Tensor, host: HostTime | None = None) -> Tensor:
        """The network output at state z (guided if guidance > 0), before the output distribution;
        ``host``: t's host record when known (``output``)."""
        params, t_in = self.process.net_input(z), t
        if self.call_dtype is not None and params.dtype != self.call_dtype:
            params, t_in = params.to(self.call_dtype), t.to(self.call_dtype)
        self.nfe += 1
        if not self.guidance:
            output = self._forward(params, t_in, self.cond)
        elif self.uncond is None:
            output = guide(self._forward(params, t_in, self.cond), self._forward(params, t_in, None),
                           self.guidance, self.output_type)
        else:
            both = self._forward(torch.cat([params, params]), torch.cat([t_in, t_in]),
                                 _map_cond(lambda c, u: torch.cat([c, u]), self.cond, self.uncond))
            output = guide(*both.chunk(2), self.guidance, self.output_type)
        self._record(output, t, host)
        return output

    def output(self, z: Tensor, t: TimeLike, apply_mask: bool = True):
        """The output distribution p_O(. | theta(z), t): one data prediction.

        apply_mask=False leaves the class mask out (for a solver that applies it its own way, e.g.
        ChemBFN's zeroed, unrenormalised probabilities in ``chembfn-ode``)."""
        host = None
        if not isinstance(t, Tensor) or (t.dim() == 0 and t.device.type == "cpu"):
            t, host = self._host_time(t, z)
        else:
            t = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0])
        if self.constraint is not None:
            z = self.constrain(z, t)
        output = self.raw_output(z, t, host)
        if output.dtype != z.dtype:
            output = output.to(z.dtype)
        if self.temperature != 1.0:
            output = temper(output, self.temperature, self.output_type)
        if self.class_mask is not None and apply_mask:
            output = mask_classes(output, self._mask_on(output.device), self.output_type)
        if host is None:
            return self.process.output_distribution(output, z, t, self.output_type)
        token = _HOST_TIME.set((t, host))
        try:
            return self.process.output_distribution(output, z, t, self.output_type)
        finally:
            _HOST_TIME.reset(token)

    def _host_time(self, t: TimeLike, z: Tensor) -> tuple[Tensor, HostTime]:
        """A host time (a number, or a CPU 0-dim tensor: the solvers' grid times) as the (B,) device tensor the
        model sees and its :class:`HostTime`: checked and rounded to the state's dtype on the host once per value
        and dtype (kept in the process's memo, across runs), filled on the device once per value, dtype, device
        and batch of this Denoiser (``sample`` makes or forks one per call; no host-to-device copy, a sync on
        CUDA, and no device-side range check per step)."""
        value = float(t)
        key = (value, z.dtype, z.device, z.shape[0])
        hit = self._times.get(key)
        if hit is None:
            def checked() -> HostTime:
                tensor = torch.as_tensor(t, dtype=z.dtype)
                if not 0.0 <= tensor.item() <= 1.0:       # NaN too: as_time raises its error
                    as_time(tensor)
                return HostTime(tensor.item(), tensor)

            host = self.process.remembered(("host_time", value, z.dtype), checked)
            device_t = torch.full((), host.value, dtype=z.dtype, device=z.device).expand(z.shape[0])
            if len(self._times) >= 4096:              # bounded (a run has one entry per grid time)
                self._times.clear()
            hit = self._times[key] = (device_t, host)
        return hit

    def _mask_on(self, device: torch.device) -> Tensor:
        """The class mask on ``device``, copied there once per run (not once per step)."""
        cached = self._mask_cache
        if cached is None or cached[0] is not self.class_mask or cached[1].device != device:
            cached = self._mask_cache = (self.class_mask, self.class_mask.to(device))
        return cached[1]

    def constrain(self, z: Tensor, t: Tensor) -> Tensor:
        """The constraint's state at time t (shape and dtype checked)."""
        new = self.constraint(z, t)
        if not isinstance(new, Tensor) or new.shape != z.shape:
            raise ValueError(f"constraint must return a tensor of the state's shape {tuple(z.shape)}, got "
                             f"{tuple(new.shape) if isinstance(new, Tensor) else type(new).__name__}")
        return new.to(z.dtype)

    def __call__(self, z: Tensor, t: TimeLike) -> Tensor:
        """Data prediction x0_hat (x, or K e_hat - 1) at state z and time t."""
        return self.process.dist_to_x0(self.output(z, t))
