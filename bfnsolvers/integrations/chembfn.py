"""ChemBFN (Tao et al., package ``bayesianflow_for_chem``) models in bfnsolvers' samplers.

``from_chembfn(model, mlp)`` returns ``(wrapped model, process)`` for ``bfnsolvers.sample``:

* process: ``DiscreteBFN(beta=ChemBFNDiscrete(beta_1, K), num_classes=K)``, ChemBFN's schedule
  beta(t) = -(4/K) ln(1 - t + t e^(-K beta_1 / 4)) with beta_1 read from the model's ``beta`` buffer;
* model: ``net(2 theta - 1, t as (B, 1, 1), y)`` -> logits (B, L, K), in eval mode;
* conditioning: ``sample(..., cond=y)`` with y (B, C) the label embedding (or, with ``mlp``, the
  property values the MLP embeds), added to the time embedding; ``guidance=w`` with ``uncond=None``
  calls the network without y for the unconditional logits: ChemBFN's (1 + w) f(y) - w f(null);
* token masks: ``class_mask_from_tokens(allowed)`` / ``class_mask_from_token_mask(mask)`` give
  ``sample``'s ``class_mask`` (True = allowed) from ChemBFN's allowed-token list / forbidden mask.

ChemBFN's own samplers on bfnsolvers (same noise, token for token; ``tests/test_chembfn.py``):
``sample(..., "bfn", schedule=chembfn_grid(n), final="denoise", readout_as="mode", draw="mode")`` is
``ChemBFN.sample`` and ``sample(..., "chembfn-ode", schedule=chembfn_grid(n), final="denoise",
readout_as="mode", ode_temperature=T)`` is ``ChemBFN.ode_sample`` (``method="ODE:T"``).

The package is AGPL-3.0 and an optional extra: it is imported here only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

try:
    import bayesianflow_for_chem as _chem
    from bayesianflow_for_chem import ChemBFN, MLP
    from bayesianflow_for_chem.data import VOCAB_KEYS, smiles2token
except ImportError as err:                                 # pragma: no cover - depends on the environment
    raise ImportError('bfnsolvers.integrations.chembfn needs ChemBFN (bayesianflow_for_chem): '
                      'pip install "bfnsolvers[chem]"') from err

from ..processes import ChemBFNDiscrete, DiscreteBFN

__all__ = ["ChemBFNModel", "from_chembfn", "load_chembfn", "chembfn_grid", "class_mask_from_tokens",
           "class_mask_from_token_mask", "tokens_to_smiles", "smiles_to_tokens", "VOCAB_KEYS"]

PAD, START, END = 0, 1, 2


class ChemBFNModel(nn.Module):
    """bfnsolvers' model interface for a ChemBFN network: ``(theta, t, y=None) -> logits``.

    theta (B, L, K) -> the network's input 2 theta - 1; t (B,) -> (B, 1, 1); y (B, C) or (B, 1, C) the
    label embedding added to the time embedding (or, with ``mlp``, the MLP's input: property values
    (B, P) or class indices). y = None is ChemBFN's null label."""

    output_type = "logits"

    def __init__(self, net: nn.Module, mlp: nn.Module | None = None):
        super().__init__()
        self.net, self.mlp = net.eval(), None if mlp is None else mlp.eval()

    def label(self, y: Tensor) -> Tensor:
        """The (B, 1, C) label embedding: mlp(y) if an MLP is attached, else y itself."""
        if self.mlp is not None:
            y = self.mlp(y)
        if y.dim() == 2:
            y = y[:, None, :]
        if y.dim() != 3 or y.shape[1] != 1:
            raise ValueError(f"y: the label embedding must have shape (B, C) or (B, 1, C), got {tuple(y.shape)}")
        return y

    def forward(self, theta: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(2 * theta - 1, t.reshape(-1, 1, 1), None, None if y is None else self.label(y))


def _check_net(model) -> None:
    if not isinstance(model, ChemBFN):
        raise ValueError(f"model must be a bayesianflow_for_chem.ChemBFN, got {type(model).__name__}")


def from_chembfn(model: "ChemBFN", mlp: "MLP | None" = None) -> tuple[ChemBFNModel, DiscreteBFN]:
    """(bfnsolvers model, process) for a ChemBFN network (put in eval mode) and its optional label MLP.

    beta_1 is the model's ``beta`` buffer (ChemBFN sets 20.4054 / K), K its vocabulary size."""
    _check_net(model)
    if mlp is not None and not isinstance(mlp, nn.Module):
        raise ValueError(f"mlp must be a bayesianflow_for_chem.MLP (or another module), got {type(mlp).__name__}")
    K = int(model.K)
    beta_1 = float(model.beta.reshape(-1)[0])
    process = DiscreteBFN(beta=ChemBFNDiscrete(beta_1, K), num_classes=K)
    return ChemBFNModel(model, mlp), process


def load_chembfn(path: str | Path, mlp: str | Path | None = None, lora: str | Path | None = None,
                 device: str | torch.device = "cpu") -> tuple[ChemBFNModel, DiscreteBFN]:
    """Load a ChemBFN checkpoint (``{"nn", "hparam"}``, ChemBFN's ``model.pt``; LoRA and MLP files optional)
    with the package's own ``ChemBFN.from_checkpoint`` / ``MLP.from_checkpoint`` and wrap it."""
    for name, value in (("path", path), ("mlp", mlp), ("lora", lora)):
        if value is not None and not Path(value).is_file():
            raise ValueError(f"{name}: no such checkpoint file {str(value)!r}")
    net = ChemBFN.from_checkpoint(path, lora).to(device)
    head = None if mlp is None else MLP.from_checkpoint(mlp).to(device)
    return from_chembfn(net, head)


def chembfn_grid(n: int) -> Tensor:
    """ChemBFN's sampling grid for n steps: t_i = i / n, i = 0..n (the final call is at t = 1), in float32
    exactly as ChemBFN rounds it ((linspace(1, n, n) - 1) / n, then 1): a 1-ulp change of one t can flip
    tokens of a guided ODE:T run on a random-weight model, whose trajectories are chaotic.

    Use it with ``final="denoise"``: n steps then one call at t = 1, n + 1 network calls, as ChemBFN."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer (ChemBFN's sample_step), got {n!r}")
    return torch.cat([(torch.linspace(1, n, n) - 1) / n, torch.ones(1)])


def class_mask_from_tokens(allowed: Sequence[str] | str, vocab_keys: Sequence[str] = VOCAB_KEYS) -> Tensor | None:
    """ChemBFN's ``allowed_tokens`` (a list of token strings, or "all") as ``class_mask`` (K,), True = allowed."""
    if isinstance(allowed, str):
        if allowed != "all":
            raise ValueError(f"allowed must be 'all' or a list of token strings, got {allowed!r}")
        return None
    allowed = list(allowed)
    unknown = sorted(set(allowed) - set(vocab_keys))
    if unknown:
        raise ValueError(f"allowed: tokens not in the vocabulary: {unknown[:5]}")
    mask = torch.tensor([k in set(allowed) for k in vocab_keys], dtype=torch.bool)
    if not bool(mask.any()):
        raise ValueError("allowed must allow at least one token")
    return mask


def class_mask_from_token_mask(token_mask: Tensor | None) -> Tensor | None:
    """ChemBFN's ``token_mask`` (bool (1, 1, K) or (K,), True = forbidden) as ``class_mask`` (True = allowed).

    ChemBFN zeroes forbidden probabilities without renormalising: the argmax (``bfn`` draw="mode", every
    readout) is the same; in ``chembfn-ode`` the default renormalise_mask=False keeps ChemBFN's form."""
    if token_mask is None:
        return None
    if not isinstance(token_mask, Tensor) or token_mask.dtype != torch.bool:
        raise ValueError("token_mask must be a bool tensor, True where a token is forbidden (ChemBFN's convention)")
    return ~token_mask.reshape(-1)


def tokens_to_smiles(tokens: Tensor, vocab_keys: Sequence[str] = VOCAB_KEYS) -> list[str]:
    """Token ids (B, L) -> strings as ChemBFN decodes them: the joined tokens after the last ``<start>``,
    cut at the first ``<end>`` that follows, with ``<pad>`` removed."""
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
        raise ValueError("tokens must be an integer tensor (B, L) of token ids")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= len(vocab_keys)):
        raise ValueError(f"tokens must lie in [0, {len(vocab_keys)}) (the vocabulary size)")
    out = []
    for row in tokens.tolist():
        text = "".join(vocab_keys[i] for i in row)
        out.append(text.split("<start>")[-1].split("<end>")[0].replace("<pad>", ""))
    return out


def smiles_to_tokens(smiles: Sequence[str], length: int | None = None) -> Tensor:
    """SMILES -> (B, L) token ids with ChemBFN's tokenizer (``<start>`` ... ``<end>``), right-padded with
    ``<pad>`` (0) to ``length`` (default: the longest)."""
    if isinstance(smiles, str):
        raise ValueError("smiles must be a list of SMILES strings, not one string")
    rows = [smiles2token(s) for s in smiles]
    longest = max((len(r) for r in rows), default=0)
    length = longest if length is None else length
    if not isinstance(length, int) or length < longest:
        raise ValueError(f"length must be an integer >= the longest tokenised SMILES ({longest}), got {length!r}")
    out = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
