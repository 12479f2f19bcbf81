"""The non-causal GPT (nanoGPT layout) of the official text8 BFN model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SelfAttention(nn.Module):
    """Multi-head self-attention with fused qkv projection ``c_attn``."""

    def __init__(self, n_head: int, n_embd: int, dropout: float, bias: bool, is_causal: bool) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_head={n_head} must divide n_embd={n_embd}")
        self.n_head = n_head
        self.dropout = dropout
        self.is_causal = is_causal
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, length, width = x.shape
        heads = [
            z.reshape(b, length, self.n_head, width // self.n_head).transpose(1, 2)
            for z in self.c_attn(x).split(width, dim=2)
        ]
        y = F.scaled_dot_product_attention(
            *heads, dropout_p=self.dropout if self.training else 0.0, is_causal=self.is_causal
        )
        y = y.transpose(1, 2).reshape(b, length, width)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Linear(4x) - tanh GELU - Linear - dropout."""

    def __init__(self, n_embd: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, n_head: int, n_embd: int, dropout: float, bias: bool, is_causal: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
        self.attn = SelfAttention(n_head, n_embd, dropout, bias, is_causal)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Official text8 BFN network: (probs (B,L,V), t (B,L)) -> logits (B,L,V).

    With ``skip`` the head sees ``[final features, input embedding]``.
    """

    def __init__(
        self,
        input_adapter: nn.Module,
        output_adapter: nn.Module | None,
        vocab_size: int,
        n_layer: int = 12,
        n_head: int = 12,
        n_embd: int = 768,
        dropout: float = 0.0,
        bias: bool = True,
        skip: bool = False,
        is_causal: bool = False,
    ) -> None:
        super().__init__()
        if skip and is_causal:
            raise ValueError("skip: the official GPT does not support skip=True with is_causal=True")
        self.input_adapter = input_adapter
        self.output_adapter = output_adapter
        self.skip = skip
        self.transformer = nn.ModuleDict(
            dict(
                drop=nn.Dropout(dropout),
                h=nn.ModuleList(Block(n_head, n_embd, dropout, bias, is_causal) for _ in range(n_layer)),
                ln_f=nn.LayerNorm(n_embd, eps=1e-5, bias=bias),
            )
        )
        self.lm_head = nn.Linear((2 if skip else 1) * n_embd, vocab_size, bias=bias)

    def forward(self, data: Tensor, t: Tensor) -> Tensor:
        x_in = self.input_adapter(data, t)
        x = self.transformer.drop(x_in)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if self.skip:
            x = torch.cat([x, x_in], dim=-1)
        logits = self.lm_head(x)
        return logits if self.output_adapter is None else self.output_adapter(logits)
