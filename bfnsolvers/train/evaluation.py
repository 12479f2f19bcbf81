"""Evaluation of a trained model: the test L_inf and the sample-quality metrics."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .config import DATA_KINDS


def _per_item(loss: Callable[[Tensor, torch.Generator], Tensor], model: Callable, x: Tensor, seed: int,
              repeats: int, batch_size: int) -> Tensor:
    """Per-item mean over ``repeats`` draws of ``loss(x_batch, generator)`` (float64, CPU), the model in eval
    mode; all draws from ``torch.Generator().manual_seed(seed)`` (batches of ``batch_size``, repeats outer)."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats!r}")
    if x.shape[0] < 2:
        raise ValueError(f"x: expected at least 2 items, got shape {tuple(x.shape)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    held = next(iter([*model.parameters(), *model.buffers()]), None) if isinstance(model, nn.Module) else None
    device = x.device if held is None else held.device
    gen = torch.Generator(device=device).manual_seed(seed)
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for _ in range(repeats):
        for i in range(0, x.shape[0], batch_size):
            total[i:i + batch_size] += loss(x[i:i + batch_size].to(device), gen).double().cpu()
    if isinstance(model, nn.Module):
        model.train(was_training)
    return total / repeats


def _mean_se(v: Tensor) -> tuple[float, float]:
    return v.mean().item(), (v.std(unbiased=True) / math.sqrt(len(v))).item()


@torch.no_grad()
def evaluate_loss_inf(model: Callable, process: Any, x: Tensor, seed: int = 0, repeats: int = 1,
                      batch_size: int = 256) -> tuple[float, float]:
    """Monte-Carlo test-set L_inf in nats per data dimension, and its standard error.

    Each item's loss is averaged over ``repeats`` independent draws of (t, z_t);
    the estimate is the mean over items of loss / D (D = dimensions per item) and
    the standard error is std(per-item means) / sqrt(N). All draws come from
    ``torch.Generator().manual_seed(seed)`` (batches of ``batch_size``, repeats outer).
    """
    per_item = _per_item(lambda xb, g: process.loss_inf(model, xb, g), model, x, seed, repeats, batch_size)
    return _mean_se(per_item / x[0].numel())


@dataclass(frozen=True)
class NLLEstimate:
    """Negative ELBO of each item, in nats per item: ``nll = loss_inf + recon`` (tensors (N,), float64).

    ``loss_inf`` is the Monte-Carlo L_inf (mean over the repeats' draws of t ~ U(0, 1), z_t), ``recon`` the
    reconstruction term L^r = -ln p_O(x | theta(1)) (mean over the repeats' draws of theta(1))."""

    loss_inf: Tensor
    recon: Tensor

    @property
    def nll(self) -> Tensor:
        return self.loss_inf + self.recon

    def summary(self, dims: int = 1) -> dict[str, float]:
        """Means over items divided by ``dims`` (1: per item; D: per dimension) with standard errors
        std / sqrt(N) (``*_se``) for ``nll``, ``loss_inf`` and ``recon``."""
        out: dict[str, float] = {}
        for key in ("nll", "loss_inf", "recon"):
            out[key], out[key + "_se"] = _mean_se(getattr(self, key) / dims)
        return out


@torch.no_grad()
def evaluate_nll(model: Callable, process: Any, x: Tensor, seed: int = 0, repeats: int = 1,
                 batch_size: int = 256) -> NLLEstimate:
    """The model's negative ELBO of each item of ``x``: -ln p(x) <= L_inf(x) + L^r(x) (Graves et al. 2023,
    continuous-time bound, eqs. 26 and 205 with the process's own beta(t)).

    L_inf = E_{t ~ U(0,1), theta ~ p_F(.|x; t)} [alpha(t) / (2 c) ||x0 - x0_hat||^2] (``process.loss_inf``) and
    L^r = E_{theta ~ p_F(.|x; 1)} [-ln p_O(x | theta; 1)] (``process.reconstruction_loss``), each averaged over
    ``repeats`` draws; the two use separate streams seeded ``seed`` and ``seed + 1``."""
    li = _per_item(lambda xb, g: process.loss_inf(model, xb, g), model, x, seed, repeats, batch_size)
    lr = _per_item(lambda xb, g: process.reconstruction_loss(model, xb, g), model, x, seed + 1, repeats, batch_size)
    return NLLEstimate(li, lr)


@torch.no_grad()
def sample_quality(model: Callable, process: Any, data: str, n: int, *, nfe: int = 1000, solver: str = "bfn",
                   seed: int = 0, batch_size: int = 256, seq_len: int = 64,
                   confidence: float = 0.9) -> tuple[Tensor, dict]:
    """Draw ``n`` samples with ``bfnsolvers.sampling.sample`` and score them; return (samples, metrics).

    Digits: the shipped digits classifier's softmax on each sample; ``confident_fraction``
    = fraction with max probability >= ``confidence``; ``class_counts``; ``fd_test`` =
    :func:`bfnsolvers.metrics.digits_fd` against the 297 test images. Text:
    ``dictionary_word_fraction`` = :func:`bfnsolvers.metrics.spelling_accuracy` (edge
    words dropped) over all samples, with the number of words scored. Batches of
    ``batch_size`` share one ``torch.Generator().manual_seed(seed)``.
    """
    from ..sampling import sample

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    if data not in DATA_KINDS:
        raise ValueError(f"data: expected one of {DATA_KINDS}, got {data!r}")
    gen = torch.Generator().manual_seed(seed)
    shape = (8, 8, 1) if data == "digits" else (seq_len,)
    parts = []
    for i in range(0, n, batch_size):
        b = min(batch_size, n - i)
        x, _ = sample(model, process, solver=solver, nfe=nfe, shape=(b, *shape), generator=gen)
        parts.append(x)
    samples = torch.cat(parts)
    metrics: dict[str, Any] = {"n": n, "nfe": nfe, "solver": solver, "seed": seed}
    if data == "digits":
        from ..data import load_digits_images
        from ..metrics import digits_fd, load_digits_classifier

        classifier = load_digits_classifier()
        probs = torch.softmax(classifier(samples.float().clamp(-1, 1)), -1)
        top, label = probs.max(-1)
        metrics.update(confidence=confidence, confident_fraction=(top >= confidence).double().mean().item(),
                       mean_max_prob=top.double().mean().item(),
                       class_counts=torch.bincount(label, minlength=10).tolist(),
                       fd_test=digits_fd(samples, load_digits_images("test")))
    else:
        from ..data import tokens_to_text
        from ..metrics import spelling_accuracy
        from ..metrics.text import split_words

        texts = tokens_to_text(samples)
        metrics.update(dictionary_word_fraction=spelling_accuracy(texts),
                       words=sum(len(split_words(t)) for t in texts), characters=samples.numel())
    return samples, metrics
