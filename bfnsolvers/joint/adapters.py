"""Adapters for molecule networks with the MolCRAFT / GeoBFN call convention.

MolCRAFT (Qu et al. 2024) and GeoBFN (Song et al. 2024) call one network on the input distributions
of both modalities, theta = (mu_pos, theta_types), the time and a context (the protein pocket for
MolCRAFT), and read a coordinate prediction and type logits:
    network(theta_pos, theta_types, t, cond, mask) -> (x0_hat_pos, type_logits).
``molecule_adapter`` turns such a network into a joint model ``model(inputs, t, cond, mask=) -> dict``
for ``sample_joint``: padded (B, N, ...) tensors with a node mask, or (``flat=True``) the
concatenated atoms of the batch with a per-atom batch index, as graph libraries use, with t per atom.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor


def molecule_adapter(network: Callable, pos: str = "pos", types: str = "types", pos_output: Literal["x", "eps"] = "x",
                     time_shape: Literal["B", "B1"] = "B", flat: bool = False) -> Callable:
    """A joint model from ``network(theta_pos, theta_types, t, cond, mask) -> (x0_hat_pos, type_logits)``.

    time_shape: t as (B,) or (B, 1). flat=True: network(pos (A, D), theta (A, K), t (A, 1), cond, batch (A,))
    with A real atoms (rows of the padded tensors where mask is True, in order) and batch[a] its molecule;
    its outputs (A, D), (A, K) are scattered back (padded nodes get 0).
    """
    if not callable(network):
        raise ValueError(f"network must be callable, got {type(network).__name__}")
    if pos_output not in ("x", "eps"):
        raise ValueError(f"pos_output must be 'x' or 'eps', got {pos_output!r}")
    if time_shape not in ("B", "B1"):
        raise ValueError(f"time_shape must be 'B' or 'B1', got {time_shape!r}")

    def model(inputs: dict, t: Tensor, cond=None, mask: Tensor | None = None) -> dict:
        theta_pos, theta_types = inputs[pos], inputs[types]
        B, N = theta_pos.shape[:2]
        if mask is None:
            mask = torch.ones(B, N, dtype=torch.bool, device=theta_pos.device)
        if flat:
            batch = torch.arange(B, device=mask.device).unsqueeze(1).expand(B, N)[mask]
            out = network(theta_pos[mask], theta_types[mask], t[batch].unsqueeze(-1), cond, batch)
        else:
            out = network(theta_pos, theta_types, t.unsqueeze(-1) if time_shape == "B1" else t, cond, mask)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError("network must return (x0_hat_pos, type_logits)")
        x_pos, logits = out
        if flat:
            full_pos = theta_pos.new_zeros(theta_pos.shape)
            full_logits = theta_types.new_zeros(theta_types.shape)
            full_pos[mask], full_logits[mask] = x_pos.to(full_pos.dtype), logits.to(full_logits.dtype)
            x_pos, logits = full_pos, full_logits
        return {pos: x_pos, types: logits}

    model.output_types = {pos: pos_output, types: "logits"}
    model.network = network
    if callable(getattr(network, "parameters", None)):
        model.parameters = network.parameters          # the joint call casts inputs to the module's dtype
    return model
