"""``JointDenoiser``: one network call for every modality, with node masks and zero centre of mass.

A joint model is ``model(inputs, t, [cond], [mask=mask]) -> outputs``: ``inputs`` maps each modality
to its network input (mu, or theta = softmax(y)), ``t`` has shape (B,), ``outputs`` maps each modality
to its raw output, read by ``model.output_types[name]`` (default: the process's output type).
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor

from ..distributions import Delta
from ..denoiser import Cond, check_cond, module_dtype
from .geometry import com_project
from .process import JointBFN


def call_joint(model: Callable, inputs: dict, t: Tensor, cond: Cond, mask: Tensor | None):
    """model(inputs, t), with cond positional (a tensor), spread (a tuple) or as keywords (a dict),
    and ``mask=`` as a keyword when a node mask is given."""
    extra = {} if mask is None else {"mask": mask}
    if cond is None:
        return model(inputs, t, **extra)
    if isinstance(cond, tuple):
        return model(inputs, t, *cond, **extra)
    if isinstance(cond, dict):
        return model(inputs, t, **cond, **extra)
    return model(inputs, t, cond, **extra)


class JointDenoiser:
    """x0_hat for every modality from one joint network call; ``nfe`` counts joint calls.

    Before each call the state is constrained: coordinate modalities (``joint.zero_com``) projected to
    zero centre of mass over real nodes, padded nodes of every modality reset to their start values
    ``hold`` (so they never move). The raw outputs at padded nodes are replaced by zeros (ignored), and
    coordinate predictions are projected to zero CoM (E[x | z] lies on the subspace when the data does).
    """

    def __init__(self, model: Callable, joint: JointBFN, output_types: Mapping[str, str] | None = None):
        if not callable(model):
            raise ValueError(f"model must be callable as model(inputs: dict, t, ...), got {type(model).__name__}")
        if not isinstance(joint, JointBFN):
            raise ValueError(f"joint must be a JointBFN, got {type(joint).__name__}")
        declared = output_types or getattr(model, "output_types", None) or {}
        if not isinstance(declared, Mapping) or set(declared) - set(joint):
            raise ValueError(f"output_types must map modality names {list(joint)} to output types, got {declared!r}")
        self.model, self.joint = model, joint
        self.output_types = {name: declared.get(name, p.default_output_type) for name, p in joint.items()}
        self.call_dtype = module_dtype(model)
        self.cond: Cond = None
        self.mask: Tensor | None = None
        self.hold: dict[str, Tensor] | None = None
        self.nfe = 0
        self.forward_batches: list[int] = []
        self.finite: list[Tensor] = []

    def configure(self, batch: int, cond: Cond = None, mask: Tensor | None = None,
                  hold: dict[str, Tensor] | None = None) -> "JointDenoiser":
        self.cond = check_cond(cond, batch)
        self.mask, self.hold = mask, hold
        return self

    def _node_mask(self, z: Tensor) -> Tensor:
        return self.mask.to(z.device).reshape(self.mask.shape + (1,) * (z.dim() - 2))

    def constrain(self, zs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Padded nodes back to their start values; coordinates to zero centre of mass over real nodes."""
        out = {}
        for name, z in zs.items():
            if self.mask is not None and self.hold is not None:
                z = torch.where(self._node_mask(z), z, self.hold[name].to(z.dtype))
            if name in self.joint.zero_com:
                z = com_project(z, self.mask)
            out[name] = z
        return out

    def outputs(self, zs: dict[str, Tensor], t) -> dict:
        """The output distribution of every modality at the joint state zs and time t: one network call."""
        names = self.joint.names
        if set(zs) != set(names):
            raise ValueError(f"state must have the modalities {list(names)}, got {list(zs)}")
        first = zs[names[0]]
        t = torch.as_tensor(t, dtype=first.dtype, device=first.device).expand(first.shape[0])
        zs = self.constrain(zs)
        inputs = {name: self.joint[name].net_input(z) for name, z in zs.items()}
        t_in = t
        if self.call_dtype is not None:
            inputs = {k: v.to(self.call_dtype) for k, v in inputs.items()}
            t_in = t.to(self.call_dtype)
        self.nfe += 1
        self.forward_batches.append(first.shape[0])
        raw = call_joint(self.model, inputs, t_in, self.cond, self.mask)
        if not isinstance(raw, Mapping) or set(raw) != set(names):
            got = list(raw) if isinstance(raw, Mapping) else type(raw).__name__
            raise ValueError(f"model must return a dict with the modalities {list(names)}, got {got} "
                             f"(wrap a tuple-returning network with bfnsolvers.joint.adapters)")
        dists = {}
        for name in names:
            out, z = raw[name], zs[name]
            if not isinstance(out, Tensor):
                raise ValueError(f"model output {name!r} must be a tensor, got {type(out).__name__}")
            out = out.to(z.dtype)
            if self.mask is not None:
                out = torch.where(self._node_mask(out), out, torch.zeros((), dtype=out.dtype, device=out.device))
            self.finite.append(torch.isfinite(out).all())
            dist = self.joint[name].output_distribution(out, z, t, self.output_types[name])
            if name in self.joint.zero_com:
                dist = Delta(com_project(dist.mean, self.mask))
            dists[name] = dist
        if self.nfe == 1:
            self.check_finite()
        return dists

    def check_finite(self) -> None:
        if self.finite and not bool(torch.stack(self.finite).all()):
            first = int((~torch.stack(self.finite)).nonzero()[0]) // len(self.joint)
            raise FloatingPointError(f"the joint model returned non-finite values at real nodes (call {first + 1}); "
                                     f"check the model, its dtype and its inputs")
