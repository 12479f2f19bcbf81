"""Output distributions p_O(x | theta, t) of BFNs (Graves et al., Secs. 4.3, 5.3, 6.3)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .rng import rand


def bin_centres(num_bins: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Centres k_c = (2k - 1)/K - 1, k = 1..K, of K equal bins on [-1, 1] (BFN eq. 88)."""
    k = torch.arange(1, num_bins + 1, dtype=dtype, device=device)
    return (2 * k - 1) / num_bins - 1


def bin_index(x: Tensor, num_bins: int) -> Tensor:
    """Index (0-based) of the bin of [-1, 1] containing x; values outside go to the end bins."""
    return ((x + 1) * (num_bins / 2)).floor().clamp(0, num_bins - 1).long()


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

    The mean is computed without the (..., K) tensor:
    sum_k p_k k_c = k_1 + (2/K) sum_{j=1}^{K-1} P(X > e_j) with edges e_j = -1 + 2j/K.
    """

    def __init__(self, mu: Tensor, sigma: Tensor, num_bins: int):
        self.mu, self.sigma, self.num_bins = mu, sigma, num_bins

    def _cdf_at_edges(self) -> Tensor:
        K = self.num_bins
        edges = -1 + 2 * torch.arange(1, K, dtype=self.mu.dtype, device=self.mu.device) / K
        return 0.5 * (1 + torch.erf((edges - self.mu.unsqueeze(-1)) / (self.sigma.unsqueeze(-1) * math.sqrt(2))))

    @property
    def probs(self) -> Tensor:
        cdf = self._cdf_at_edges()
        zeros, ones = torch.zeros_like(cdf[..., :1]), torch.ones_like(cdf[..., :1])
        return torch.diff(torch.cat([zeros, cdf, ones], -1), dim=-1)

    @property
    def mean(self) -> Tensor:
        K = self.num_bins
        return (1 / K - 1) + (2 / K) * (1 - self._cdf_at_edges()).sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Inverse CDF per element: the bin containing mu + sigma Phi^-1(u)."""
        u = rand(self.mu.shape, generator, self.mu.dtype, self.mu.device)
        u = u.clamp(1e-7, 1 - 1e-7)
        x = self.mu + self.sigma * math.sqrt(2) * torch.erfinv(2 * u - 1)
        return self.centres[bin_index(x, self.num_bins)]


class Categorical:
    """Categorical over the last dimension from logits (discrete data, BFN eq. 185)."""

    def __init__(self, logits: Tensor):
        self.logits = logits

    @property
    def probs(self) -> Tensor:
        return torch.softmax(self.logits, -1)

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
