"""Exact oracle models: perfectly trained BFNs for known data distributions.

Each oracle is a model ``oracle(params, t)`` under the BFN model interface, with an
``output_type`` its process understands, and draws exact data samples with ``sample``.
Posteriors use the linear-SDE form of the flow, z_t | x ~ N(a(t) x0, s(t)^2 I).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .metrics.oracle_metrics import gmm_log_prob, markov_entropy_rate
from .processes import ContinuousBFN, DiscreteBFN, DiscretisedBFN
from .processes.base import as_time


def _coefficients(process, t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """a(t) and s(t)^2 in float64, shaped (B, 1, 1) for a scalar or per-sample t."""
    t = as_time(t).to(state.device).double().expand(state.shape[0]).reshape(-1, 1, 1)
    return process.a(t), process.s(t) ** 2


class GaussianMixtureOracle:
    """Isotropic Gaussian mixture sum_m w_m N(m_m, std^2 I) in D dims; returns E[x | mu_t].

    With v = a^2 std^2 + s^2, p(m | z) is proportional to w_m N(z; a m_m, v I) and
    E[x | z, m] = m_m + (a std^2 / v)(z - a m_m).
    """

    output_type = "x"

    def __init__(self, process: ContinuousBFN, means: Tensor, std: float, weights: Tensor | None = None):
        if means.dim() != 2:
            raise ValueError(f"means must have shape (M, D), got {tuple(means.shape)}")
        if not std > 0:
            raise ValueError(f"std must be positive, got {std!r}")
        self.process, self.means, self.std = process, means.double(), float(std)
        w = torch.ones(means.shape[0], dtype=torch.float64) if weights is None else weights.double()
        if w.shape != (means.shape[0],) or (w < 0).any():
            raise ValueError(f"weights must be non-negative with shape ({means.shape[0]},)")
        self.weights = w / w.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def __call__(self, mu: Tensor, t: Tensor) -> Tensor:
        return self.posterior_mean(mu, t, self.weights.log().unsqueeze(-1))

    def posterior_mean(self, mu: Tensor, t: Tensor, log_weights: Tensor) -> Tensor:
        """E[x | mu_t] for mixture log-weights (M, 1) or per sample (B, M, 1)."""
        if mu.dim() != 2 or mu.shape[1] != self.dim:
            raise ValueError(f"mu must have shape (B, {self.dim}), got {tuple(mu.shape)}")
        a, s2 = _coefficients(self.process, t, mu)                        # (B, 1, 1)
        z = mu.double().unsqueeze(1)                                      # (B, 1, D)
        v = (a ** 2 * self.std ** 2 + s2).clamp_min(1e-300)   # t = 0: the prior mean
        d2 = ((z - a * self.means) ** 2).sum(-1, keepdim=True)            # (B, M, 1)
        r = torch.softmax(log_weights - d2 / (2 * v), 1)
        cond = self.means + (a * self.std ** 2 / v) * (z - a * self.means)  # (B, M, D)
        return (r * cond).sum(1).to(mu.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact samples (n, D), float64."""
        m = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[m] + self.std * torch.randn(n, self.dim, generator=generator, dtype=torch.float64)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log density of x (N, D)."""
        return gmm_log_prob(x.double(), self.means, self.std, self.weights)


class ConditionalMixtureOracle(GaussianMixtureOracle):
    """A Gaussian mixture whose label c selects the component weights w_{c, m}; labels are uniform.

    ``oracle(mu, t, label)`` is the exact E[x | mu_t, c]; ``oracle(mu, t)`` (or label = num_labels, the
    null label) the unconditional E[x | mu_t] under the marginal weights mean_c w_{c, m}.
    """

    def __init__(self, process: ContinuousBFN, means: Tensor, std: float, label_weights: Tensor):
        if label_weights.dim() != 2 or label_weights.shape[1] != means.shape[0] or (label_weights < 0).any():
            raise ValueError(f"label_weights must be non-negative with shape (C, {means.shape[0]})")
        table = label_weights.double() / label_weights.double().sum(-1, keepdim=True)
        super().__init__(process, means, std, table.mean(0))
        self.label_weights = torch.cat([table, self.weights.unsqueeze(0)])      # row C: the null label
        self.num_labels = table.shape[0]

    def __call__(self, mu: Tensor, t: Tensor, label: Tensor | None = None) -> Tensor:
        if label is None:
            return super().__call__(mu, t)
        if label.shape != (mu.shape[0],):
            raise ValueError(f"label must have shape ({mu.shape[0]},), got {tuple(label.shape)}")
        return self.posterior_mean(mu, t, self.label_weights[label.long()].clamp_min(1e-300).log().unsqueeze(-1))

    def sample_given(self, label: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact samples (n, D) of x | c = label, float64."""
        m = torch.multinomial(self.label_weights[label], n, replacement=True, generator=generator)
        return self.means[m] + self.std * torch.randn(n, self.dim, generator=generator, dtype=torch.float64)


class DiscretisedOracle:
    """Independent per-dimension distributions over K bins; returns the exact posterior over bins.

    p(k | mu_t) is proportional to p_k N(mu_t; a k_c, s^2) for each dimension.
    """

    output_type = "bin_probs"

    def __init__(self, process: DiscretisedBFN, probs: Tensor):
        if probs.dim() != 2 or probs.shape[1] != process.num_bins:
            raise ValueError(f"probs must have shape (D, {process.num_bins}), got {tuple(probs.shape)}")
        self.process = process
        self.probs = probs.double() / probs.double().sum(-1, keepdim=True)
        self.centres = process.centres(torch.float64)

    def __call__(self, mu: Tensor, t: Tensor) -> Tensor:
        if mu.dim() != 2 or mu.shape[1] != self.probs.shape[0]:
            raise ValueError(f"mu must have shape (B, {self.probs.shape[0]}), got {tuple(mu.shape)}")
        a, s2 = _coefficients(self.process, t, mu)                        # (B, 1, 1)
        s2 = s2.clamp_min(1e-300)
        logp = self.probs.clamp_min(1e-300).log() - (mu.double().unsqueeze(-1) - a * self.centres) ** 2 / (2 * s2)
        return torch.softmax(logp, -1).to(mu.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact samples (n, D) of bin centres, float64."""
        idx = torch.multinomial(self.probs, n, replacement=True, generator=generator).T
        return self.centres[idx]

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log probability of samples of bin centres (N, D)."""
        from .distributions import bin_index
        idx = bin_index(x.double(), self.process.num_bins)
        return self.probs.log().gather(1, idx.T).T.sum(-1)


class MarkovChainOracle:
    """First-order Markov chain over K classes of length L; returns exact posterior marginals.

    Under the sender distribution p(y_l | x_l = k) is proportional to exp(y_{l,k}) (the
    other factors do not depend on k), so the posterior marginals p(x_l | y) follow from
    forward-backward with emission log-potentials y, in log space.
    """

    output_type = "logits"

    def __init__(self, process: DiscreteBFN, init: Tensor, trans: Tensor, length: int):
        K = process.num_classes
        if init.shape != (K,) or trans.shape != (K, K):
            raise ValueError(f"init must have shape ({K},) and trans ({K}, {K}), got {tuple(init.shape)}, {tuple(trans.shape)}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        self.process, self.length = process, length
        self.init = init.double() / init.double().sum()
        self.trans = trans.double() / trans.double().sum(-1, keepdim=True)

    def __call__(self, theta: Tensor, t: Tensor) -> Tensor:
        """Log posterior marginals (B, L, K) given theta = softmax(y) (only ln theta = y + c is used)."""
        if theta.dim() != 3 or theta.shape[1:] != (self.length, self.process.num_classes):
            raise ValueError(f"theta must have shape (B, {self.length}, {self.process.num_classes}), got {tuple(theta.shape)}")
        return self.log_marginals(theta.double().clamp_min(1e-300).log()).to(theta.dtype)

    def log_marginals(self, emission: Tensor) -> Tensor:
        """ln p(x_l = k | y) by scaled forward-backward with log-potentials ``emission`` (B, L, K)."""
        phi = torch.exp(emission - emission.amax(-1, keepdim=True))       # potentials in (0, 1], max 1
        L = emission.shape[1]
        fwd = [_normalise(self.init * phi[:, 0])]
        for l in range(1, L):
            fwd.append(_normalise((fwd[-1] @ self.trans) * phi[:, l]))
        bwd = [torch.ones_like(fwd[0])]
        for l in range(L - 1, 0, -1):
            bwd.append(_normalise((phi[:, l] * bwd[-1]) @ self.trans.T))
        post = torch.stack(fwd, 1) * torch.stack(bwd[::-1], 1)
        return torch.log(_normalise(post).clamp_min(1e-300))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact sequences (n, L) of class indices."""
        x = [torch.multinomial(self.init, n, replacement=True, generator=generator)]
        for _ in range(1, self.length):
            x.append(torch.multinomial(self.trans[x[-1]], 1, generator=generator).squeeze(-1))
        return torch.stack(x, 1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log probability of sequences (N, L)."""
        lp = self.init.log()[x[:, 0]]
        return lp + self.trans.log()[x[:, :-1], x[:, 1:]].sum(-1)

    def entropy_rate(self) -> float:
        """Exact entropy per token, H(x_1..x_L) / L, in nats."""
        return markov_entropy_rate(self.init, self.trans, self.length)


def oracle_problem(name: str, seed: int = 0):
    """The standard oracle problems of the benchmarks, as (oracle, process).

    - "gmm": 8 isotropic components (std 0.08) in 8 dims, means U(-0.6, 0.6), with
      ContinuousBFN(sigma_1 = 0.001) as for CIFAR-10 (no clipping: the oracle is exact).
    - "discretised": 16 independent dims over 17 bins with Dirichlet(0.5) probabilities,
      DiscretisedBFN(sigma_1 = sqrt(1e-3), 17 bins).
    - "markov": a first-order chain over K = 27 classes of length 32 with Dirichlet(0.1)
      transition rows, DiscreteBFN(beta_1 = 0.75^2, 27) as for text8.
    """
    g = torch.Generator().manual_seed(seed)
    if name == "gmm":
        process = ContinuousBFN(1e-3, x_range=None)
        means = torch.rand(8, 8, generator=g, dtype=torch.float64) * 1.2 - 0.6
        return GaussianMixtureOracle(process, means, 0.08), process
    if name == "discretised":
        process = DiscretisedBFN(math.sqrt(1e-3), 17)
        return DiscretisedOracle(process, _dirichlet((16, 17), 0.5, seed)), process
    if name == "markov":
        process = DiscreteBFN(0.75 ** 2, 27)
        trans = _dirichlet((27, 27), 0.1, seed) + 1e-6
        return MarkovChainOracle(process, torch.ones(27, dtype=torch.float64), trans, 32), process
    raise ValueError(f"oracle problem must be one of ('gmm', 'discretised', 'markov'), got {name!r}")


def _normalise(p: Tensor) -> Tensor:
    return p / p.sum(-1, keepdim=True)


def _dirichlet(shape: tuple[int, int], concentration: float, seed: int) -> Tensor:
    """Rows drawn from a symmetric Dirichlet, reproducibly for a seed (global RNG left untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = torch.distributions.Gamma(torch.full(shape, concentration, dtype=torch.float64), 1.0).sample()
    return g / g.sum(-1, keepdim=True)
