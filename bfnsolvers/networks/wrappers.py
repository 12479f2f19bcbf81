"""Wrap official networks into the bfnsolvers model convention ``model(params, t)``.

``t`` has shape (B,) (one BFN time per sample; a 0-dim tensor or float is
broadcast). Each wrapper exposes ``output_type``, ``data_shape`` (per-sample
shape of ``params``) and the official network as ``net``, so that
``wrapper.state_dict()`` has exactly the keys of an official EMA checkpoint.

- images (UNetVDM): params = input mean (B, H, W, C) -> eps_hat (B, H, W, C)
  [``"eps"``] or (B, H, W, C, 2) with [..., 0] = mu_eps, [..., 1] = ln sigma_eps
  [``"eps_gaussian"``];
- binarised images (UNetModel): params = theta (B, H, W, 2) -> logits (B, H, W, 2)
  = [0, Bernoulli logit of x=1] [``"logits"``];
- text (GPT): params = theta (B, L, K) -> logits (B, L, K) [``"logits"``].
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .gpt import GPT
from .unet_improved import UNetModel
from .unet_vdm import UNetVDM


class BFNNetwork(nn.Module):
    """Base wrapper: holds ``net`` and checks ``params`` / ``t``."""

    output_type: str
    data_shape: tuple[int, ...]

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def _check(self, params: Tensor, t: Any) -> Tensor:
        """Validate shapes; return t as a (B,) tensor of params' dtype and device."""
        if not isinstance(params, Tensor) or tuple(params.shape[1:]) != tuple(self.data_shape):
            got = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
            raise ValueError(f"params: expected shape (B, {', '.join(map(str, self.data_shape))}), got {got}")
        t = torch.as_tensor(t, dtype=params.dtype, device=params.device)
        if t.dim() == 0:
            t = t.expand(params.shape[0])
        if t.shape != (params.shape[0],):
            raise ValueError(f"t: expected shape ({params.shape[0]},) (one time per sample), got {tuple(t.shape)}")
        return t

    @staticmethod
    def _times_like(t: Tensor, shape: torch.Size) -> Tensor:
        """Broadcast per-sample times (B,) to ``shape`` (the official nets take t shaped like data)."""
        return t.reshape(-1, *([1] * (len(shape) - 1))).expand(shape)


class ImageEpsNetwork(BFNNetwork):
    """UNetVDM on continuous / discretised images: predicts the noise eps."""

    def __init__(self, net: UNetVDM) -> None:
        super().__init__(net)
        height = net.output_adapter.output_height
        if height not in (1, 2):
            raise ValueError(f"net: output adapter height must be 1 (eps) or 2 (eps mean, log-std), got {height}")
        self.output_type = "eps" if height == 1 else "eps_gaussian"
        self.data_shape = (net.image_size, net.image_size, net.output_adapter.output_channels)

    def forward(self, params: Tensor, t: Any) -> Tensor:
        t = self._check(params, t)
        out = self.net(params, self._times_like(t, params.shape))
        shape = (*params.shape, 2) if self.output_type == "eps_gaussian" else params.shape
        return out.reshape(shape)


class BinaryLogitsNetwork(BFNNetwork):
    """UNetModel on binarised images: theta (B, H, W, 2) -> 2-class logits [0, logit(x=1)]."""

    output_type = "logits"
    num_classes = 2

    def __init__(self, net: UNetModel) -> None:
        super().__init__(net)
        adapter = net.output_adapter
        if (adapter.output_channels, adapter.output_height) != (1, 1):
            raise ValueError("net: expected a single Bernoulli logit per pixel (output adapter 1 x 1)")
        self.data_shape = (net.image_size, net.image_size, 2)

    def forward(self, params: Tensor, t: Any) -> Tensor:
        t = self._check(params, t)
        net_input = 2 * params[..., :1] - 1  # the official input is 2 P(x=0) - 1
        logit = self.net(net_input, self._times_like(t, net_input.shape)).reshape(params.shape[:-1])
        return torch.stack([torch.zeros_like(logit), logit], dim=-1)


class TextLogitsNetwork(BFNNetwork):
    """GPT on text: theta (B, L, K) -> logits (B, L, K)."""

    output_type = "logits"

    def __init__(self, net: GPT) -> None:
        super().__init__(net)
        if net.output_adapter is not None:
            raise ValueError("net: expected a GPT without output adapter (the official text8 layout)")
        self.num_classes = net.lm_head.out_features
        self.data_shape = (net.input_adapter.seq_len, self.num_classes)

    def forward(self, params: Tensor, t: Any) -> Tensor:
        t = self._check(params, t)
        return self.net(params, self._times_like(t, params.shape[:2]))


def wrap_network(net: nn.Module) -> BFNNetwork:
    """Wrap an official network (from ``build_network``) into the model convention."""
    if isinstance(net, UNetVDM):
        return ImageEpsNetwork(net)
    if isinstance(net, UNetModel):
        return BinaryLogitsNetwork(net)
    if isinstance(net, GPT):
        return TextLogitsNetwork(net)
    raise ValueError(f"net: expected UNetVDM, UNetModel or GPT, got {type(net).__name__}")
