"""Evaluation of a trained model: the test L_inf and the sample-quality metrics."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .config import DATA_KINDS


@torch.no_grad()
def evaluate_loss_inf(model: Callable, process: Any, x: Tensor, seed: int = 0, repeats: int = 1,
                      batch_size: int = 256) -> tuple[float, float]:
    """Monte-Carlo test-set L_inf in nats per data dimension, and its standard error.

    Each item's loss is averaged over ``repeats`` independent draws of (t, z_t);
    the estimate is the mean over items of loss / D (D = dimensions per item) and
    the standard error is std(per-item means) / sqrt(N). All draws come from
    ``torch.Generator().manual_seed(seed)`` (batches of ``batch_size``, repeats outer).
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats!r}")
    if x.shape[0] < 2:
        raise ValueError(f"x: expected at least 2 items, got shape {tuple(x.shape)}")
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    device = next(model.parameters()).device if isinstance(model, nn.Module) else torch.device("cpu")
    gen = torch.Generator(device=device).manual_seed(seed)
    dims = x[0].numel()
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for _ in range(repeats):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device)
            total[i:i + batch_size] += process.loss_inf(model, xb, gen).double().cpu()
    if isinstance(model, nn.Module):
        model.train(was_training)
    per_item = total / repeats / dims
    return per_item.mean().item(), (per_item.std(unbiased=True) / math.sqrt(len(per_item))).item()


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
