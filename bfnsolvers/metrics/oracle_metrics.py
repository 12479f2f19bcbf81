"""Quality metrics against exactly known target distributions (oracles).

Conventions: samples are (N, D) tensors; log-likelihoods are natural logs (nats);
every function returns Python floats (or a small NamedTuple of them).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ModeCoverage",
    "energy_distance",
    "start_kl_gmm",
    "gmm_log_prob",
    "gmm_nll",
    "markov_bigram_probs",
    "markov_bigram_tv",
    "markov_chain_nll",
    "markov_entropy_rate",
    "markov_nll_gap",
    "mode_coverage",
    "sliced_wasserstein2",
    "wasserstein2_1d",
]


def _as_2d(name: str, x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, D) with N >= 1, got {tuple(x.shape)}")
    return x


def _sort_rows(a: Tensor) -> Tensor:
    """Sort along the last dim (numpy on CPU: ~3x faster than torch.sort there)."""
    if a.device.type == "cpu":
        return torch.from_numpy(np.sort(a.detach().numpy(), axis=-1))
    return torch.sort(a, dim=-1).values


def wasserstein2_1d(xs: Tensor, ys: Tensor) -> Tensor:
    """Squared W2 between the empirical measures of the rows of ``xs`` (P, N) and ``ys`` (P, M).

    W2^2 = int_0^1 (F^-1(q) - G^-1(q))^2 dq with the empirical (step) quantile
    functions; exact for any N, M: the integral is summed over the pieces between
    the merged breakpoints {i/N} U {j/M} (computed in integers, so no round-off in
    the breakpoints). For N = M it is mean((sort(x) - sort(y))^2). Returns (P,).
    """
    xs, ys = _sort_rows(xs), _sort_rows(ys)
    n, m = xs.shape[-1], ys.shape[-1]
    if n == m:
        return ((xs - ys) ** 2).mean(-1)
    dev = xs.device
    # breakpoints on the common grid 1/(n*m): i*m and j*n
    b = torch.unique(torch.cat([torch.arange(1, n + 1, device=dev) * m, torch.arange(1, m + 1, device=dev) * n]))
    lo = torch.cat([torch.zeros(1, dtype=b.dtype, device=dev), b[:-1]])
    width = (b - lo).to(xs.dtype) / (n * m)
    # piece (lo, b]: quantile index = ceil(level * n) - 1 = floor(lo / m) since lo is a breakpoint below b
    ix = torch.div(lo, m, rounding_mode="floor")
    iy = torch.div(lo, n, rounding_mode="floor")
    return (((xs[..., ix] - ys[..., iy]) ** 2) * width).sum(-1)


def sliced_wasserstein2(
    x: Tensor,
    y: Tensor,
    n_projections: int = 512,
    generator: torch.Generator | None = None,
    squared: bool = False,
) -> float:
    """Monte-Carlo sliced 2-Wasserstein distance between the samples ``x`` (N, D) and ``y`` (M, D).

    SW2^2(x, y) = E_u[ W2^2(u.x, u.y) ], u uniform on the unit sphere S^{D-1},
    estimated with ``n_projections`` random directions (shared by x and y; drawn
    from ``generator`` on the CPU). Each 1-D term is the exact W2^2 between the
    projected empirical measures (:func:`wasserstein2_1d`; N != M handled by
    merging quantile breakpoints). Returns SW2 = sqrt(SW2^2) by default, SW2^2 if
    ``squared``. For two isotropic Gaussians with means differing by m,
    SW2^2 = ||m||^2 / D. Computed in float64.
    """
    x, y = _as_2d("x", x), _as_2d("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension D, got {x.shape[1]} and {y.shape[1]}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    d = x.shape[1]
    u = torch.randn(d, n_projections, generator=generator, dtype=torch.float64)
    u = (u / u.norm(dim=0, keepdim=True)).to(x.device)
    px = (x.to(torch.float64) @ u).T  # (P, N)
    py = (y.to(x.device, torch.float64) @ u).T
    sw2 = wasserstein2_1d(px, py).mean().item()
    return sw2 if squared else math.sqrt(max(sw2, 0.0))


def _mixture_args(x: Tensor, means: Tensor, std: float | Tensor, weights: Tensor | None):
    x, means = _as_2d("x", x), _as_2d("means", means)
    if means.shape[1] != x.shape[1]:
        raise ValueError(f"means must have shape (K, {x.shape[1]}), got {tuple(means.shape)}")
    k = means.shape[0]
    std_t = torch.as_tensor(std, dtype=torch.float64, device=x.device).reshape(-1)
    if std_t.numel() not in (1, k) or (std_t <= 0).any():
        raise ValueError(f"std must be a positive scalar or a (K,) = ({k},) tensor of positives")
    std_t = std_t.expand(k)
    if weights is None:
        w = torch.full((k,), 1.0 / k, dtype=torch.float64, device=x.device)
    else:
        w = torch.as_tensor(weights, dtype=torch.float64, device=x.device)
        if w.shape != (k,) or (w < 0).any() or abs(w.sum().item() - 1) > 1e-6:
            raise ValueError(f"weights must be a ({k},) probability vector")
    return x.to(torch.float64), means.to(x.device, torch.float64), std_t, w


def gmm_nll(
    x: Tensor,
    means: Tensor,
    std: float | Tensor,
    weights: Tensor | None = None,
    per_dim: bool = False,
) -> float:
    """Mean negative log-likelihood of the samples ``x`` (N, D) under an isotropic Gaussian mixture.

    p(x) = sum_k w_k N(x; mu_k, std_k^2 I), ``means`` (K, D), ``std`` a scalar or (K,),
    ``weights`` (K,) (uniform if None). Returns -(1/N) sum_n ln p(x_n) in nats per
    sample, or nats per dimension (divided by D) if ``per_dim``. For exact samples
    this estimates the mixture's differential entropy.
    """
    lp = gmm_log_prob(x, means, std, weights)
    nll = -lp.mean().item()
    return nll / _as_2d("x", x).shape[1] if per_dim else nll


def gmm_log_prob(x: Tensor, means: Tensor, std: float | Tensor, weights: Tensor | None = None) -> Tensor:
    """Exact log density ln p(x_n) (N,) of ``x`` (N, D) under the isotropic Gaussian mixture of ``gmm_nll``
    (float64; ``GaussianMixtureOracle.log_prob`` is this)."""
    x, mu, s, w = _mixture_args(x, means, std, weights)
    d = x.shape[1]
    sq = torch.cdist(x, mu) ** 2  # (N, K)
    log_comp = torch.log(w) - d * torch.log(s) - 0.5 * d * math.log(2 * math.pi) - sq / (2 * s**2)
    return torch.logsumexp(log_comp, dim=1)


class ModeCoverage(NamedTuple):
    """Result of :func:`mode_coverage`."""

    modes_covered: float  # fraction of modes with >= 1 sample within the radius
    samples_near: float  # fraction of samples within the radius of some mode
    counts: Tensor  # (K,) number of samples whose nearest mode is k and within its radius


def mode_coverage(
    x: Tensor,
    means: Tensor,
    std: float | Tensor,
    threshold: float | None = None,
) -> ModeCoverage:
    """Mode coverage of the samples ``x`` (N, D) for modes ``means`` (K, D) of width ``std``.

    A sample is "near" mode k if ||x - mu_k|| <= r std_k. The radius r is
    ``threshold`` (in stds, Euclidean) or, if None, sqrt(chi2_D.ppf(0.999)): the
    radius that holds 99.9% of an exact mode's samples in D dimensions (in D
    dims ||x - mu||/std ~ chi_D, typically sqrt(D), so a fixed "3 std" radius is
    too small for large D). Returns the fraction of modes with at least one near
    sample, the fraction of samples near some mode, and per-mode counts (each
    sample counted once, for its nearest mode, if near it).
    """
    x, mu, s, _ = _mixture_args(x, means, std, None)
    d = x.shape[1]
    if threshold is None:
        from scipy.stats import chi2

        threshold = math.sqrt(chi2.ppf(0.999, d))
    elif threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    dist = torch.cdist(x, mu) / s  # (N, K), in stds of each mode
    near = dist <= threshold
    nearest = dist.argmin(dim=1)
    near_nearest = near.gather(1, nearest[:, None]).squeeze(1)
    counts = torch.bincount(nearest[near_nearest], minlength=mu.shape[0])
    return ModeCoverage(
        modes_covered=near.any(dim=0).double().mean().item(),
        samples_near=near.any(dim=1).double().mean().item(),
        counts=counts.cpu(),
    )


def _markov_args(init: Tensor, trans: Tensor) -> tuple[Tensor, Tensor]:
    init = torch.as_tensor(init, dtype=torch.float64)
    trans = torch.as_tensor(trans, dtype=torch.float64, device=init.device)
    k = init.shape[0] if init.ndim == 1 else -1
    if init.ndim != 1 or (init < 0).any() or abs(init.sum().item() - 1) > 1e-6:
        raise ValueError("init must be a (K,) probability vector")
    if trans.shape != (k, k) or (trans < 0).any() or (trans.sum(1) - 1).abs().max().item() > 1e-6:
        raise ValueError(f"trans must be a ({k}, {k}) row-stochastic matrix")
    return init, trans


def _xlogx(p: Tensor) -> Tensor:
    return torch.where(p > 0, p * torch.log(torch.where(p > 0, p, 1.0)), torch.zeros_like(p))


def markov_chain_nll(tokens: Tensor, init: Tensor, trans: Tensor) -> float:
    """Mean NLL per token (nats) of sequences ``tokens`` (B, L) under a first-order Markov chain.

    -ln p(x) = -ln init[x_0] - sum_{t>=1} ln trans[x_{t-1}, x_t]; the result is the
    sum over all sequences divided by B*L. ``init`` (K,) and ``trans`` (K, K) are
    probabilities (rows of ``trans`` sum to 1). A zero-probability token gives inf.
    """
    init, trans = _markov_args(init, trans)
    tokens = torch.as_tensor(tokens)
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[1] < 1 or tokens.dtype.is_floating_point:
        raise ValueError(f"tokens must be an integer (B, L) tensor, got {tuple(tokens.shape)} {tokens.dtype}")
    tokens = tokens.to(init.device, torch.long)
    if tokens.min() < 0 or tokens.max() >= init.shape[0]:
        raise ValueError(f"tokens must lie in [0, {init.shape[0] - 1}]")
    logp = torch.log(init[tokens[:, 0]]).sum()
    logp = logp + torch.log(trans[tokens[:, :-1], tokens[:, 1:]]).sum()
    return -logp.item() / tokens.numel()


def markov_entropy_rate(init: Tensor, trans: Tensor, length: int) -> float:
    """Exact entropy per token (nats) of length-``length`` sequences of the chain.

    H(X_0..X_{L-1}) / L = [H(p_0) + sum_{t=1}^{L-1} sum_i p_{t-1}(i) H(trans[i, :])] / L,
    with marginals p_t = init trans^t. This equals E[markov_chain_nll] of exact
    samples, so a perfect sampler's NLL per token matches it in expectation
    (``MarkovChainOracle.entropy_rate`` is this).
    """
    init, trans = _markov_args(init, trans)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    row_h = -_xlogx(trans).sum(1)
    total = -_xlogx(init).sum()
    p = init
    for _ in range(1, length):
        total = total + (p * row_h).sum()
        p = p @ trans
    return total.item() / length


def markov_nll_gap(tokens: Tensor, init: Tensor, trans: Tensor) -> float:
    """NLL per token of ``tokens`` (B, L) minus the chain's exact entropy per token at length L.

    ~0 (within Monte-Carlo error) for exact samples. Positive: samples are less
    likely than the chain's own (off-distribution). Negative is possible too:
    samples over-concentrated on likely sequences (low diversity).
    """
    tokens = torch.as_tensor(tokens)
    length = tokens.shape[-1]
    return markov_chain_nll(tokens, init, trans) - markov_entropy_rate(init, trans, length)


def markov_bigram_probs(init: Tensor, trans: Tensor, length: int) -> Tensor:
    """Exact probabilities (K, K) of the adjacent pair (x_l, x_{l+1}), pooled over the L - 1 pairs of a
    length-``length`` sequence: P[i, j] = mean_l p_l(i) trans[i, j], p_l = init trans^l."""
    init, trans = _markov_args(init, trans)
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an integer >= 2 (sequences with a pair), got {length!r}")
    total, p = torch.zeros_like(trans), init
    for _ in range(length - 1):
        total = total + p[:, None] * trans
        p = p @ trans
    return total / (length - 1)


def markov_bigram_tv(tokens: Tensor, init: Tensor, trans: Tensor) -> float:
    """Total variation 0.5 sum_ij |f_ij - P_ij| between the pooled adjacent-pair frequencies f of
    ``tokens`` (B, L) and their exact probabilities P (:func:`markov_bigram_probs`). Unlike the NLL gap,
    it sees samples too concentrated on likely pairs as well as off-distribution ones."""
    init, trans = _markov_args(init, trans)
    tokens = torch.as_tensor(tokens)
    if tokens.ndim != 2 or tokens.shape[1] < 2 or tokens.dtype.is_floating_point:
        raise ValueError(f"tokens must be an integer (B, L) tensor with L >= 2, got {tuple(tokens.shape)} {tokens.dtype}")
    k = init.shape[0]
    tokens = tokens.to(init.device, torch.long)
    if tokens.min() < 0 or tokens.max() >= k:
        raise ValueError(f"tokens must lie in [0, {k - 1}]")
    pairs = (tokens[:, :-1] * k + tokens[:, 1:]).flatten()
    freq = torch.bincount(pairs, minlength=k * k).to(init.dtype) / pairs.numel()
    return 0.5 * (freq - markov_bigram_probs(init, trans, tokens.shape[1]).flatten()).abs().sum().item()


def start_kl_gmm(r: float, start_mean: Tensor, means: Tensor, std: float, weights: Tensor | None = None,
                 nodes: int = 48) -> float:
    """KL(q || p) of a start state q = N(a m, s^2 I) from the true marginal p(z_t) = sum_k w_k N(a m_k,
    (a^2 std^2 + s^2) I) of an isotropic Gaussian mixture, with r = a / s (``start_mean`` m (D,) = 0: the zero
    start). In units of s: q = N(r m, I), p = sum_k w_k N(r m_k, c I), c = 1 + r^2 std^2, and with u = r m + e,
    d_k = r (m - m_k): ln p_k(u) - ln q(u) = -D/2 ln c + |e|^2 (c - 1) / (2c) - e.d_k / c - |d_k|^2 / (2c), every
    term small (no cancellation of O(1) log densities), so KL down to ~1e-20 is resolved.
    KL = -E_e[logsumexp_k(ln w_k + ...)], e ~ N(0, I), by a product Gauss-Hermite rule of ``nodes`` per dimension
    (exponentially convergent for this smooth integrand; D <= 3)."""
    means = _as_2d("means", torch.as_tensor(means, dtype=torch.float64))
    k, d = means.shape
    m = torch.as_tensor(start_mean, dtype=torch.float64).reshape(-1)
    if m.shape != (d,):
        raise ValueError(f"start_mean must have shape ({d},), got {tuple(m.shape)}")
    if not (isinstance(r, (int, float)) and r > 0 and math.isfinite(r)):
        raise ValueError(f"r must be a positive finite number (a / s at the start time), got {r!r}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    if d > 3:
        raise ValueError(f"means: the quadrature is a product rule, for D <= 3; got D = {d}")
    if not (isinstance(nodes, int) and nodes >= 2):
        raise ValueError(f"nodes must be an integer >= 2, got {nodes!r}")
    w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (k,) or (w < 0).any():
        raise ValueError(f"weights must be non-negative with shape ({k},)")
    w = w / w.sum()
    x1, w1 = np.polynomial.hermite_e.hermegauss(nodes)            # weight exp(-x^2 / 2)
    x1, w1 = torch.from_numpy(x1), torch.from_numpy(w1 / math.sqrt(2 * math.pi))
    grids = torch.meshgrid(*([x1] * d), indexing="ij")
    e = torch.stack([g.reshape(-1) for g in grids], -1)              # (Q, D)
    we = torch.stack(torch.meshgrid(*([w1] * d), indexing="ij"), -1).reshape(-1, d).prod(-1)
    cm1 = r ** 2 * std ** 2
    c = 1.0 + cm1
    dk = r * (m - means)                                             # (K, D)
    lk = (-0.5 * d * math.log1p(cm1) + (e ** 2).sum(-1, keepdim=True) * cm1 / (2 * c)
          - (e @ dk.T) / c - (dk ** 2).sum(-1) / (2 * c))            # (Q, K)
    # ln sum_k w_k e^{l_k} as log1p(sum_k w_k expm1(l_k)) where the l_k are small (logsumexp's ln(1 + delta)
    # would lose ~1e-16 absolute, the size of the prior-mean start's KL at r ~ 3e-4)
    small = lk.abs().amax(-1) < 0.5
    lse = torch.where(small, torch.log1p((w * torch.expm1(lk.clamp(max=0.5))).sum(-1)),
                      torch.logsumexp(torch.log(w) + lk, -1))
    return -(we * lse).sum().item()


def energy_distance(x: Tensor, y: Tensor, max_points: int | None = None, unbiased: bool = True) -> float:
    """Energy distance E(x, y) = 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely) between the samples ``x`` (N, D) and
    ``y`` (M, D), Euclidean norms; 0 iff the distributions agree. unbiased: the within-set means exclude the
    diagonal (the U-statistic: mean 0 for two exact sets, can be slightly negative); False: the V-statistic (the
    energy distance of the two empirical measures, >= 0; a positive noise floor, for ratios to it).
    ``max_points``: use the first that many rows of each (the cost is O((N + M)^2 D)). Float64."""
    x, y = _as_2d("x", x), _as_2d("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension D, got {x.shape[1]} and {y.shape[1]}")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"x and y need at least 2 samples each, got {x.shape[0]} and {y.shape[0]}")
    if max_points is not None:
        if not (isinstance(max_points, int) and max_points >= 2):
            raise ValueError(f"max_points must be an integer >= 2 or None, got {max_points!r}")
        x, y = x[:max_points], y[:max_points]
    x, y = x.to(torch.float64), y.to(x.device, torch.float64)
    n, m = x.shape[0], y.shape[0]
    xy = torch.cdist(x, y).mean()
    xx = torch.cdist(x, x).sum() / (n * (n - 1) if unbiased else n * n)
    yy = torch.cdist(y, y).sum() / (m * (m - 1) if unbiased else m * m)
    return (2 * xy - xx - yy).item()
