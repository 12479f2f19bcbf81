"""Input and output adapters of the official BFN networks.

Attribute, parameter and buffer names follow the official checkpoints
(``input_adapter.pos_feats``, ``output_adapter.output_projection``, ...).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


def at_least_float32(x: Tensor) -> Tensor:
    """Upcast half precision to float32; float32 and float64 pass through."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) or not x.is_floating_point() else x


def flatten_middle(x: Tensor) -> Tensor:
    """Reshape (B, ..., C) to (B, N, C): one row per position."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def sinusoidal_table(length: int, width: int, base: float = 1000.0) -> Tensor:
    """Fixed positional table of the official text adapter, shape (length, width).

    Even columns are ``sin(p / base**(2i/width))``; odd columns are
    ``cos(p / base**((2i+1)/width))`` (the official code uses the odd index in
    the exponent, and base 1000).
    """
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    even = torch.arange(0, width, 2, dtype=torch.float32)
    odd = torch.arange(1, width, 2, dtype=torch.float32)
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(pos / torch.pow(base, even / width))
    table[:, 1::2] = torch.cos(pos / torch.pow(base, odd / width))
    return table


def _float_sinusoids(x: Tensor, max_freq: float, width: int) -> Tensor:
    """Sinusoidal features of values in [-1, 1] (base 10000), shape x.shape + (width,)."""
    pos = ((x + 1) / 2 * max_freq).unsqueeze(-1)
    even = torch.arange(0, width, 2, dtype=torch.float32, device=x.device)
    odd = torch.arange(1, width, 2, dtype=torch.float32, device=x.device)
    out = torch.zeros(*x.shape, width, device=x.device, dtype=pos.dtype)
    out[..., 0::2] = torch.sin(pos / torch.pow(10000.0, even / width))
    out[..., 1::2] = torch.cos(pos / torch.pow(10000.0, odd / width))
    return out


def image_position_features(height: int, width: int, n_freq_bands: int) -> Tensor:
    """Fixed Fourier position codes of an image grid, shape (H*W, 4*n_freq_bands + 2).

    Columns: sin of all (axis, band) products, cos of the same, then the raw
    (row, column) coordinates in [-1, 1].
    """
    rows = torch.linspace(-1.0, 1.0, steps=height)
    cols = torch.linspace(-1.0, 1.0, steps=width)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)
    bands = torch.stack(
        (
            torch.linspace(1.0, height / 2, steps=n_freq_bands),
            torch.linspace(1.0, width / 2, steps=n_freq_bands),
        )
    )
    angles = math.pi * (grid[:, :, None] * bands[None]).reshape(grid.shape[0], -1)
    return torch.cat([angles.sin(), angles.cos(), grid], dim=-1)


class FourierImageInputAdapter(nn.Module):
    """Flattens an image (B, H, W, C) to per-pixel features (B, H*W, output_height).

    Features are [pixel values, optional time feature 2t-1, optional position
    codes], linearly projected only when their count differs from output_height.
    """

    def __init__(
        self,
        input_channels: int = 3,
        input_shape: Sequence[int] = (224, 224),
        n_freq_bands: int = 64,
        output_height: int = 256,
        value_res: int = -1,
        mask_res: int = -1,
        add_pos_feats: bool = True,
        add_mask: bool = True,
        learn_pos_feats: bool = False,
        pos_embed_size: int = 32,
        init_scale: float = 0.02,
    ) -> None:
        super().__init__()
        height, width = (int(s) for s in input_shape)
        self.input_shape = (height, width)
        self.n_freq_bands = n_freq_bands
        self.value_res = value_res
        self.mask_res = mask_res
        self.add_pos_feats = add_pos_feats
        self.add_mask = add_mask
        if learn_pos_feats:
            self.pos_feats = nn.Parameter(init_scale * torch.randn(1, height * width, pos_embed_size))
        else:
            self.register_buffer("pos_feats", image_position_features(height, width, n_freq_bands))
        mask_height = 2 * n_freq_bands + 1 if mask_res > 0 else 1
        n_features = input_channels
        n_features += mask_height if add_mask else 0
        n_features += self.pos_feats.shape[-1] if add_pos_feats else 0
        self.output_projection = (
            nn.Linear(n_features, output_height) if n_features != output_height else None
        )

    def forward(self, img: Tensor, t: Tensor) -> Tensor:
        feats = [flatten_middle(img)]
        if self.add_mask:
            t_feat = at_least_float32(flatten_middle(t))[..., :1] * 2 - 1
            if self.mask_res > 0:
                codes = _float_sinusoids(t_feat, self.mask_res, 2 * self.n_freq_bands)
                t_feat = torch.cat([t_feat, codes.flatten(start_dim=2)], dim=-1)
            feats.append(t_feat)
        if self.add_pos_feats:
            pos = self.pos_feats if self.pos_feats.dim() == 3 else self.pos_feats[None]
            feats.append(pos.expand(img.shape[0], -1, -1))
        out = torch.cat(feats, dim=-1)
        return out if self.output_projection is None else self.output_projection(out)


class TextInputAdapter(nn.Module):
    """Embeds class probabilities (B, L, V) and times (B, L) into (B, L, output_size)."""

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        output_size: int = 256,
        learn_pos_embedding: bool = False,
    ) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.learn_pos_embedding = learn_pos_embedding
        if learn_pos_embedding:
            self.pos_embedding = nn.Embedding(seq_len, output_size)
        else:
            self.register_buffer("pos_embedding", sinusoidal_table(seq_len, output_size))
        self.inp_embedding = nn.Linear(vocab_size, output_size)
        self.t_embedding = nn.Linear(1, output_size)

    def forward(self, probs: Tensor, t: Tensor) -> Tensor:
        length = probs.shape[1]
        table = self.pos_embedding.weight if self.learn_pos_embedding else self.pos_embedding
        pos = table[:length].unsqueeze(0).expand(probs.shape[0], -1, -1)
        return self.inp_embedding(2 * probs - 1) + pos + self.t_embedding((2 * t - 1).unsqueeze(-1))


class OutputAdapter(nn.Module):
    """Linear head mapping (B, N, input_height) to (B, N, output_channels, output_height)."""

    def __init__(self, input_height: int, output_channels: int, output_height: int) -> None:
        super().__init__()
        self.output_channels = output_channels
        self.output_height = output_height
        self.output_projection = nn.Linear(input_height, output_channels * output_height)

    def forward(self, x: Tensor) -> Tensor:
        out = self.output_projection(x)
        return out.reshape(out.shape[0], -1, self.output_channels, self.output_height)
