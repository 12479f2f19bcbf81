"""Output distributions p_O(x | theta, t) of BFNs (Graves et al., Secs. 4.3, 5.3, 6.3)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from . import kernels

from .constants import bin_centres  # noqa: F401 (bfnsolvers.distributions.bin_centres)
from .rng import PerSample, RandomSource, rand


def bin_index(x: Tensor, num_bins: int) -> Tensor:
    """Index (0-based) of the bin of [-1, 1] containing x; values outside go to the end bins."""
    return ((x + 1) * (num_bins / 2)).floor().clamp(0, num_bins - 1).long()


def softmax_last(logits: Tensor) -> Tensor:
    """softmax over the last dimension; for K = 2 as sigmoid(+-(l_1 - l_0)), the same function
    (exp(l_1) / (exp(l_0) + exp(l_1)) = 1 / (1 + exp(l_0 - l_1))) at a fraction of the cost."""
    if logits.shape[-1] == 2:
        d = logits[..., 1:] - logits[..., :1]
        return torch.sigmoid(torch.cat([-d, d], -1))
    return torch.softmax(logits, -1)


def _categorical_sample(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One index per row of probs (..., K) by inverse CDF with one uniform per row."""
    u = rand(probs.shape[:-1] + (1,), generator, probs.dtype, probs.device)
    cdf = probs.cumsum(-1)
    return (cdf < u * cdf[..., -1:]).sum(-1).clamp(max=probs.shape[-1] - 1)


class Delta:
    """Point mass at x_hat (continuous data, BFN eq. 84)."""

    def __init__(self, x_hat: Tensor):
        self.mean = self.mode = x_hat

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.mean


class BinDistribution:
    """A distribution over the K bins of [-1, 1] given by its probabilities (..., K)."""

    def __init__(self, probs: Tensor):
        self._probs = probs
        self.num_bins = probs.shape[-1]

    @property
    def probs(self) -> Tensor:
        return self._probs

    @property
    def centres(self) -> Tensor:
        return bin_centres(self.num_bins, self.probs.dtype, self.probs.device)

    @property
    def mean(self) -> Tensor:
        """sum_k p_k k_c."""
        return (self.probs * self.centres).sum(-1)

    @property
    def mode(self) -> Tensor:
        """Centre of the most probable bin."""
        return self.centres[self.probs.argmax(-1)]

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Centre of a bin drawn from the probabilities."""
        return self.centres[_categorical_sample(self.probs, generator)]

    def log_prob(self, x: Tensor) -> Tensor:
        """ln p(bin of x)."""
        idx = bin_index(x, self.num_bins).unsqueeze(-1)
        return self.probs.gather(-1, idx).squeeze(-1).clamp_min(1e-12).log()


class DiscretisedGaussian(BinDistribution):
    """N(mu, sigma^2) discretised onto K bins of [-1, 1], the end bins absorbing the tails (BFN eq. 108).

    Bin k has mass p_k = F(e_k) - F(e_{k-1}), F the Gaussian CDF at the edges e_j = -1 + 2j/K,
    F(e_0) = 0, F(e_K) = 1. mean, mode and sample never build the (..., K) tensor
    (``bfnsolvers.kernels.discretised_gaussian``: the fused Triton kernel on CUDA, a chunked torch path elsewhere):
    mean = sum_k p_k k_c = -(1/K) sum_{j=1}^{K-1} erf((e_j - mu) / (sqrt2 sigma)); mode = the bin of
    largest mass; sample = the bin #{j: F(e_j) <= u}, u ~ U[0, 1). Only ``probs`` (asked explicitly,
    e.g. by losses) builds it; ``log_prob`` reads two CDF values per element.
    """

    def __init__(self, mu: Tensor, sigma: Tensor, num_bins: int):
        self.mu, self.sigma, self.num_bins = mu, sigma, num_bins
        self._mean: Tensor | None = None
        self._mode: Tensor | None = None

    def _cdf_at_edges(self) -> Tensor:
        K = self.num_bins
        edges = -1 + 2 * torch.arange(1, K, dtype=self.mu.dtype, device=self.mu.device) / K
        return 0.5 * (1 + torch.erf((edges - self.mu.unsqueeze(-1)) / (self.sigma.unsqueeze(-1) * math.sqrt(2))))

    @property
    def probs(self) -> Tensor:
        """The (..., K) bin masses (materialised: for losses and metrics, not the sampling path)."""
        cdf = self._cdf_at_edges()
        zeros, ones = torch.zeros_like(cdf[..., :1]), torch.ones_like(cdf[..., :1])
        return torch.diff(torch.cat([zeros, cdf, ones], -1), dim=-1)

    @property
    def centres(self) -> Tensor:
        return bin_centres(self.num_bins, self.mu.dtype, self.mu.device)

    @property
    def mean(self) -> Tensor:
        """sum_k p_k k_c (computed once per distribution)."""
        if self._mean is None:
            self._mean = kernels.discretised_gaussian(self.mu, self.sigma, self.num_bins).mean
        return self._mean

    @property
    def mode(self) -> Tensor:
        """Centre of the most probable bin (computed once per distribution)."""
        if self._mode is None:
            self._mode = kernels.discretised_gaussian(self.mu, self.sigma, self.num_bins, mean=False, mode=True).mode
        return self._mode

    def sample(self, generator: RandomSource = None) -> Tensor:
        """Centre of a bin drawn by inverse CDF with one uniform per element (``bfnsolvers.rng.rand``,
        per-sample generators included; the fused Triton kernel draws Philox uniforms seeded from a
        single generator instead)."""
        philox = not isinstance(generator, PerSample) and kernels.resolve_backend(self.mu) == "triton"
        u = None if philox else rand(self.mu.shape, generator, self.mu.dtype, self.mu.device)
        return kernels.discretised_gaussian(self.mu, self.sigma, self.num_bins, mean=False, sample=True, u=u,
                                            generator=generator if philox else None).sample

    def log_prob(self, x: Tensor) -> Tensor:
        """ln p(bin of x) = ln(F(e_k) - F(e_{k-1})), F(e_0) = 0, F(e_K) = 1, clamped at 1e-12."""
        K = self.num_bins
        k = bin_index(x, K).to(self.mu.dtype) + 1  # 1-based bin: edges e_{k-1}, e_k
        edge = lambda j: -1 + 2 * j / K  # noqa: E731
        cdf = lambda j: 0.5 * (1 + torch.erf((edge(j) - self.mu) / (self.sigma * math.sqrt(2))))  # noqa: E731
        upper = torch.where(k >= K, torch.ones_like(self.mu), cdf(k))
        lower = torch.where(k <= 1, torch.zeros_like(self.mu), cdf(k - 1))
        return (upper - lower).clamp_min(1e-12).log()


class Categorical:
    """Categorical over the last dimension from logits (discrete data, BFN eq. 185)."""

    def __init__(self, logits: Tensor):
        self.logits = logits

    @property
    def probs(self) -> Tensor:
        """softmax(logits) (a sigmoid of the logit difference for K = 2)."""
        return softmax_last(self.logits)

    @property
    def mean(self) -> Tensor:
        """The expected one-hot vector e_hat = softmax(logits)."""
        return self.probs

    @property
    def mode(self) -> Tensor:
        return self.logits.argmax(-1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Class indices drawn from the probabilities."""
        return _categorical_sample(self.probs, generator)

    def log_prob(self, k: Tensor) -> Tensor:
        return torch.log_softmax(self.logits, -1).gather(-1, k.long().unsqueeze(-1)).squeeze(-1)
