"""The VDM-style UNet of the official CIFAR-10 BFN models (no spatial resampling).

State-dict layout and numerics follow the official ``UNetVDM``: a Fourier-feature
input, ``n_blocks`` residual blocks down, res/attention/res in the middle,
``n_blocks + 1`` blocks up with skip concatenation, and a linear output adapter
applied to ``[adapter output, features]`` per pixel.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .adapters import at_least_float32, flatten_middle


def vdm_time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of 1000*(t + 0.001): sin half then cos half, shape (B, dim)."""
    if dim % 2:
        raise ValueError(f"embedding_dim must be even, got {dim}")
    steps = at_least_float32(t + 0.001) * 1000.0
    inv_timescales = torch.logspace(0.0, -4.0, dim // 2, device=t.device, dtype=steps.dtype)
    angles = steps[:, None] * inv_timescales[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class FourierFeatures(nn.Module):
    """sin/cos of 2*pi*2^n*x for n in [first, last]; order: frequency-major, channel-minor."""

    def __init__(self, first: float = 5.0, last: float = 6.0, step: float = 1.0) -> None:
        super().__init__()
        self.exponents = [first + i * step for i in range(int(round((last - first) / step)) + 1)]

    @property
    def num_features(self) -> int:
        return 2 * len(self.exponents)

    def forward(self, x: Tensor) -> Tensor:
        exps = torch.tensor(self.exponents, dtype=x.dtype, device=x.device)
        freqs = (2.0**exps * 2 * math.pi).view(-1, *([1] * (x.dim() - 1)))
        angles = (freqs * x.unsqueeze(1)).flatten(1, 2)
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResnetBlock(nn.Module):
    """GN-SiLU-conv, + projected condition, GN-SiLU-dropout-conv, residual."""

    def __init__(
        self,
        ch_in: int,
        ch_out: int,
        condition_dim: int,
        dropout_prob: float,
        norm_groups: int,
    ) -> None:
        super().__init__()
        self.net1 = nn.Sequential(
            nn.GroupNorm(norm_groups, ch_in), nn.SiLU(), nn.Conv2d(ch_in, ch_out, 3, padding=1)
        )
        self.cond_proj = nn.Linear(condition_dim, ch_out, bias=False)
        self.net2 = nn.Sequential(
            nn.GroupNorm(norm_groups, ch_out),
            nn.SiLU(),
            nn.Dropout(dropout_prob),
            nn.Conv2d(ch_out, ch_out, 3, padding=1),
        )
        self.skip_conv = nn.Conv2d(ch_in, ch_out, 1) if ch_in != ch_out else None

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.net1(x) + self.cond_proj(cond)[:, :, None, None]
        h = self.net2(h)
        return (x if self.skip_conv is None else self.skip_conv(x)) + h


class ChannelAttention(nn.Module):
    """Multi-head attention over pixels; input (B, 3*C, H, W) laid out as [q | k | v]."""

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads

    def forward(self, qkv: Tensor) -> Tensor:
        b, width, *spatial = qkv.shape
        ch = width // (3 * self.n_heads)
        q, k, v = qkv.reshape(b, width, -1).chunk(3, dim=1)
        scale = ch ** (-0.25)
        shape = (b * self.n_heads, ch, q.shape[-1])
        q = (q * scale).reshape(shape)
        k = (k * scale).reshape(shape)
        v = v.reshape(shape)
        weight = torch.einsum("bct,bcs->bts", q, k)
        weight = torch.softmax(at_least_float32(weight), dim=-1).to(weight.dtype)
        out = torch.einsum("bts,bcs->bct", weight, v)
        return out.reshape(b, width // 3, *spatial)


class AttentionBlock(nn.Module):
    """Residual self-attention: GN, 1x1 conv to qkv, attention, 1x1 conv."""

    def __init__(self, n_heads: int, n_channels: int, norm_groups: int) -> None:
        super().__init__()
        if n_channels % n_heads:
            raise ValueError(f"n_attention_heads={n_heads} must divide embedding_dim={n_channels}")
        self.layers = nn.Sequential(
            nn.GroupNorm(norm_groups, n_channels),
            nn.Conv2d(n_channels, 3 * n_channels, 1),
            ChannelAttention(n_heads),
            nn.Conv2d(n_channels, n_channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x) + x


class UpDownBlock(nn.Module):
    """A resnet block, optionally followed by attention."""

    def __init__(self, resnet_block: ResnetBlock, attention_block: AttentionBlock | None) -> None:
        super().__init__()
        self.resnet_block = resnet_block
        self.attention_block = attention_block

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = self.resnet_block(x, cond)
        return x if self.attention_block is None else self.attention_block(x)


class UNetVDM(nn.Module):
    """Official CIFAR-10 BFN network: (data (B,H,W,C), t (B,H,W,C)) -> (B, H*W, C, h)."""

    def __init__(
        self,
        input_adapter: nn.Module,
        output_adapter: nn.Module,
        embedding_dim: int = 128,
        n_blocks: int = 32,
        n_attention_heads: int = 1,
        dropout_prob: float = 0.1,
        norm_groups: int = 32,
        input_channels: int = 3,
        use_fourier_features: bool = True,
        attention_everywhere: bool = False,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        self.input_adapter = input_adapter
        self.output_adapter = output_adapter
        self.embedding_dim = embedding_dim
        self.input_channels = input_channels
        self.image_size = image_size
        self.fourier_features = FourierFeatures() if use_fourier_features else None
        d = embedding_dim
        self.embed_conditioning = nn.Sequential(
            nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, 4 * d), nn.SiLU()
        )
        n_in = input_channels * (1 + (self.fourier_features.num_features if use_fourier_features else 0))
        self.conv_in = nn.Conv2d(n_in, d, 3, padding=1)

        def block(ch_in: int, attention: bool) -> UpDownBlock:
            res = ResnetBlock(ch_in, d, 4 * d, dropout_prob, norm_groups)
            att = AttentionBlock(n_attention_heads, d, norm_groups) if attention else None
            return UpDownBlock(res, att)

        self.down_blocks = nn.ModuleList(block(d, attention_everywhere) for _ in range(n_blocks))
        self.mid_resnet_block_1 = ResnetBlock(d, d, 4 * d, dropout_prob, norm_groups)
        self.mid_attn_block = AttentionBlock(n_attention_heads, d, norm_groups)
        self.mid_resnet_block_2 = ResnetBlock(d, d, 4 * d, dropout_prob, norm_groups)
        self.up_blocks = nn.ModuleList(block(2 * d, attention_everywhere) for _ in range(n_blocks + 1))
        self.conv_out = nn.Sequential(nn.GroupNorm(norm_groups, d), nn.SiLU(), nn.Conv2d(d, d, 3, padding=1))

    def forward(self, data: Tensor, t: Tensor) -> Tensor:
        flat = self.input_adapter(data, t)
        s = self.image_size
        x = flat.reshape(flat.shape[0], s, s, self.input_channels)
        emb = vdm_time_embedding(at_least_float32(t).flatten(1)[:, 0], self.embedding_dim)
        cond = self.embed_conditioning(emb.to(self.conv_in.weight.dtype))
        h = x.permute(0, 3, 1, 2).contiguous()
        if self.fourier_features is not None:
            h = torch.cat([h, self.fourier_features(h)], dim=1)
        h = self.conv_in(h)
        skips = []
        for down in self.down_blocks:
            skips.append(h)
            h = down(h, cond)
        skips.append(h)
        h = self.mid_resnet_block_1(h, cond)
        h = self.mid_attn_block(h)
        h = self.mid_resnet_block_2(h, cond)
        for up in self.up_blocks:
            h = up(torch.cat([h, skips.pop()], dim=1), cond)
        feats = flatten_middle(self.conv_out(h).permute(0, 2, 3, 1))
        return self.output_adapter(torch.cat([flatten_middle(x), feats], dim=-1))
