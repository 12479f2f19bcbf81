"""The improved-diffusion UNet of the official binarised-MNIST BFN model.

State-dict layout and numerics follow the official ``UNetModel``: GroupNorm with
32 groups everywhere, attention where the downsampling rate is listed in
``attention_resolutions`` (and always in the middle), an optional input
projection, and a skip of the projected input into the output adapter.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .adapters import at_least_float32, flatten_middle


def diffusion_time_embedding(steps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """[cos | sin] embedding of (fractional) step indices, shape (B, dim)."""
    half = dim // 2
    steps = at_least_float32(steps)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    angles = steps[:, None] * freqs.to(steps.device, steps.dtype)[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups, computed in (at least) float32."""

    def __init__(self, channels: int) -> None:
        super().__init__(32, channels)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(at_least_float32(x)).type(x.dtype)


class ResBlock(nn.Module):
    """Residual block conditioned on a time embedding (added, or scale/shift)."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Residual self-attention over pixels; qkv laid out per head as [q_h, k_h, v_h]."""

    def __init__(self, channels: int, num_heads: int = 1) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the channel count {channels}")
        self.num_heads = num_heads
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x)).reshape(b * self.num_heads, -1, x.shape[-1])
        ch = qkv.shape[1] // 3
        q, k, v = qkv.split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(at_least_float32(weight), dim=-1).type(weight.dtype)
        h = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, -1)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class Downsample(nn.Module):
    """Halves the resolution with a stride-2 conv (``op``) or average pooling."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Doubles the resolution (nearest), then an optional 3x3 conv."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else None

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x if self.conv is None else self.conv(x)


class EmbedSequential(nn.Sequential):
    """Sequential that also passes the time embedding to residual blocks."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNetModel(nn.Module):
    """Official MNIST BFN network: (data (B,H,W,C), t (B,H,W,C)) -> output adapter layout."""

    def __init__(
        self,
        input_adapter: nn.Module,
        output_adapter: nn.Module,
        image_size: int = 32,
        in_channels: int = 3,
        model_channels: int = 128,
        out_channels: int = 128,
        num_res_blocks: int = 3,
        attention_resolutions: Sequence[int] = (8, 16),
        dropout: float = 0.0,
        channel_mult: Sequence[int] = (1, 2, 2, 2),
        conv_resample: bool = True,
        dims: int = 2,
        skip: bool = True,
        num_classes: int | None = None,
        use_checkpoint: bool = False,
        num_heads: int = 4,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        project_input: bool = False,
    ) -> None:
        super().__init__()
        if dims != 2:
            raise ValueError(f"dims: only 2-D images are supported, got {dims}")
        if num_classes is not None:
            raise ValueError("num_classes: class-conditional UNetModel is not supported (expected None)")
        self.input_adapter = input_adapter
        self.output_adapter = output_adapter
        self.image_size = image_size
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.skip = skip
        self.project_input = project_input
        heads_up = num_heads if num_heads_upsample == -1 else num_heads_upsample
        if project_input:
            self.input_projection = nn.Linear(in_channels, model_channels)
        emb_dim = 4 * model_channels
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )

        def res(ch_in: int, ch_out: int | None = None) -> ResBlock:
            return ResBlock(ch_in, emb_dim, dropout, ch_out, use_scale_shift_norm)

        first_in = model_channels if project_input else in_channels
        self.input_blocks = nn.ModuleList(
            [EmbedSequential(nn.Conv2d(first_in, model_channels, 3, padding=1))]
        )
        skip_chans = [model_channels]
        ch, ds = model_channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_heads))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(EmbedSequential(Downsample(ch, conv_resample)))
                skip_chans.append(ch)
                ds *= 2

        self.middle_block = EmbedSequential(res(ch), AttentionBlock(ch, num_heads), res(ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    layers.append(AttentionBlock(ch, heads_up))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))

        self.out = nn.Sequential(
            GroupNorm32(ch), nn.SiLU(), nn.Conv2d(model_channels, out_channels, 3, padding=1)
        )

    def forward(self, data: Tensor, t: Tensor) -> Tensor:
        flat = self.input_adapter(data, t)
        s = self.image_size
        x = flat.reshape(flat.shape[0], s, s, self.in_channels)
        if self.project_input:
            x = self.input_projection(x)
        steps = t.flatten(1)[:, 0] * 4000
        emb = self.time_embed(diffusion_time_embedding(steps, self.model_channels).to(x.dtype))
        h = x.permute(0, 3, 1, 2).contiguous()
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        out = flatten_middle(self.out(h).permute(0, 2, 3, 1))
        if self.skip:
            out = torch.cat([flatten_middle(x), out], dim=-1)
        return self.output_adapter(out)
