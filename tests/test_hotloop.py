"""The output distributions on the sampling path: the discretised Gaussian's mean / mode / sample
without the (..., K) tensor (same numbers as the dense formula, same distribution, no large
tensor anywhere in ``sample()``), and the K = 2 categorical by a sigmoid."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils._python_dispatch import TorchDispatchMode

from bfnsolvers import kernels
from bfnsolvers import ContinuousBFN, DiscreteBFN, DiscretisedBFN
from bfnsolvers.distributions import Categorical, DiscretisedGaussian, bin_centres, softmax_last
from bfnsolvers.processes import discretised as discretised_module
from bfnsolvers.sampling import sample
from helpers import chisquare_pvalue


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class DenseGaussian(DiscretisedGaussian):
    """The materialising formulas (the code before this change): mean = sum_k p_k k_c, mode = the
    centre of argmax_k p_k, sample = the bin of mu + sigma sqrt2 erfinv(2u - 1), u clamped to
    [1e-7, 1 - 1e-7], one torch.rand per element."""

    @property
    def mean(self) -> torch.Tensor:
        return (self.probs * self.centres).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return self.centres[self.probs.argmax(-1)]

    def sample(self, generator=None) -> torch.Tensor:
        u = torch.rand(self.mu.shape, generator=generator, dtype=self.mu.dtype, device=self.mu.device)
        x = self.mu + self.sigma * math.sqrt(2) * torch.erfinv(2 * u.clamp(1e-7, 1 - 1e-7) - 1)
        return self.centres[((x + 1) * (self.num_bins / 2)).floor().clamp(0, self.num_bins - 1).long()]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        idx = ((x + 1) * (self.num_bins / 2)).floor().clamp(0, self.num_bins - 1).long().unsqueeze(-1)
        return self.probs.gather(-1, idx).squeeze(-1).clamp_min(1e-12).log()


def _scipy_probs(mu: torch.Tensor, sigma: torch.Tensor, K: int) -> np.ndarray:
    """float64 p_k = Phi(e_k) - Phi(e_{k-1}) by scipy, end bins absorbing the tails: shape (n, K)."""
    e = -1.0 + 2.0 * np.arange(1, K) / K
    cdf = stats.norm.cdf((e[None] - mu.double().reshape(-1, 1).numpy()) / sigma.double().reshape(-1, 1).numpy())
    n = cdf.shape[0]
    return np.diff(np.concatenate([np.zeros((n, 1)), cdf, np.ones((n, 1))], 1), axis=1)


def _network_outputs(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, output (..., 2)) spanning the clamps: ln sigma_eps beyond +-10, large |mu_eps|."""
    g = _gen(seed)
    mu = 0.7 * torch.randn(shape, generator=g, dtype=dtype)
    out = torch.stack([2.0 * torch.randn(shape, generator=g, dtype=dtype),
                       6.0 * torch.randn(shape, generator=g, dtype=dtype)], -1)
    return mu, out


TIMES = [0.0, 5e-7, 0.03, 0.4, 0.9, 1.0]  # t < t_min (std 1, mean 0), early (std clamped at 10), late (1e-3)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("K", [2, 16, 256])
def test_discretised_output_matches_dense(dtype: torch.dtype, tol: float, K: int) -> None:
    """Through DiscretisedBFN.output_distribution (per-sample times, t < t_min mask, sigma clamps):
    mean vs the dense formula and vs scipy, mode = the float64 argmax, log_prob = the dense gather."""
    process = DiscretisedBFN(math.sqrt(1e-3), K)
    mu, out = _network_outputs((len(TIMES), 3, 40), K, dtype)
    t = torch.tensor(TIMES, dtype=dtype)
    dist = process.output_distribution(out, mu, t)
    assert isinstance(dist, DiscretisedGaussian)
    assert bool((dist.mu[:2] == 0).all()) and bool((dist.sigma[:2] == 1).all())  # the t < t_min mask
    assert float(dist.sigma.min()) == pytest.approx(1e-3) and float(dist.sigma.max()) == pytest.approx(10.0)
    dense = DenseGaussian(dist.mu, dist.sigma, K)
    torch.testing.assert_close(dist.mean, dense.mean, rtol=0, atol=tol)
    p64 = _scipy_probs(dist.mu, dist.sigma, K)
    c64 = bin_centres(K, torch.float64).numpy()
    np.testing.assert_allclose(dist.mean.double().reshape(-1).numpy(), p64 @ c64, rtol=0, atol=2 * tol)
    mode_bin = ((dist.mode.double().reshape(-1) + 1) * K / 2 - 0.5).round().long().numpy()
    chosen, best = p64[np.arange(len(p64)), mode_bin], p64.max(1)
    assert (chosen >= best * (1 - tol)).all()
    x = torch.rand(mu.shape, generator=_gen(1), dtype=dtype) * 2.4 - 1.2
    torch.testing.assert_close(dist.log_prob(x), dense.log_prob(x), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_discretised_sample_is_the_dense_inverse_cdf(dtype: torch.dtype) -> None:
    """The sample uses one torch.rand per element (the random stream of the code before), and its bin
    is the dense inverse-CDF bin #{j: F(e_j) <= u} for that u; the old erfinv quantile agrees on all
    elements whose u is not within 1e-6 of a bin boundary."""
    K = 64
    mu, out = _network_outputs((4, 500), 3, dtype)
    dist = DiscretisedBFN(math.sqrt(1e-3), K).output_distribution(out, mu, torch.tensor([0.2, 0.5, 0.8, 1.0], dtype=dtype))
    g_new, g_old = _gen(5), _gen(5)
    got = dist.sample(g_new)
    u = torch.rand(mu.shape, generator=_gen(5), dtype=dtype)
    assert torch.equal(g_new.get_state(), (torch.rand(mu.shape, generator=g_old, dtype=dtype), g_old.get_state())[1])
    cdf = dist._cdf_at_edges()
    want = dist.centres[(cdf <= u.unsqueeze(-1)).sum(-1)]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    old = DenseGaussian(dist.mu, dist.sigma, K).sample(_gen(5))
    near = ((cdf - u.unsqueeze(-1)).abs() < 1e-6).any(-1)
    assert bool((old == got)[~near].all()) and float(near.float().mean()) < 0.01


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("K", [2, 27, 256])
def test_discretised_mean_gradient(dtype: torch.dtype, tol: float, K: int) -> None:
    """The mean is differentiable (L_inf trains through it): its gradient in (mu, sigma) equals autograd
    through the dense formula sum_k p_k k_c (relative to the largest entry), through output_distribution."""
    process = DiscretisedBFN(math.sqrt(1e-3), K)
    mu, out = _network_outputs((len(TIMES), 2, 30), 7 + K, dtype)
    out.requires_grad_()
    weights = torch.randn(mu.shape, generator=_gen(8), dtype=dtype)
    t = torch.tensor(TIMES, dtype=dtype)
    grads = []
    for cls in (DiscretisedGaussian, DenseGaussian):
        dist = process.output_distribution(out, mu, t)
        mean = (dist.mean if cls is DiscretisedGaussian else DenseGaussian(dist.mu, dist.sigma, K).mean)
        grads.append(torch.autograd.grad((mean * weights).sum(), out)[0])
    scale = grads[1].abs().max()
    assert float(scale) > 0
    torch.testing.assert_close(grads[0] / scale, grads[1] / scale, rtol=0, atol=tol)


def test_discretised_loss_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    """loss_inf through a small network: same loss and parameter gradients as with the dense class."""
    process = DiscretisedBFN(math.sqrt(1e-3), 16)
    x = bin_centres(16)[torch.randint(0, 16, (8, 12), generator=_gen(0))]
    results = []
    for cls in (DiscretisedGaussian, DenseGaussian):
        monkeypatch.setattr(discretised_module, "DiscretisedGaussian", cls)
        torch.manual_seed(0)
        net = torch.nn.Linear(12, 24, dtype=torch.float64)
        model = lambda mu, t: net(mu + t[:, None]).reshape(mu.shape + (2,))  # noqa: E731
        loss = process.loss_inf(model, x.double(), _gen(1)).mean()
        loss.backward()
        results.append((loss.detach(), net.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-12, atol=0)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-9, atol=1e-12)


def test_discretised_sample_per_sample_generators() -> None:
    """With one generator per sample (bfnsolvers.rng.PerSample), row i is the draw of generator i alone."""
    from bfnsolvers.rng import PerSample

    mu, out = _network_outputs((3, 200), 9, torch.float32)
    dist = DiscretisedBFN(math.sqrt(1e-3), 32).output_distribution(out, mu, torch.tensor([0.3, 0.6, 0.9]))
    rows = dist.sample(PerSample([_gen(10 + i) for i in range(3)]))
    alone = DiscretisedGaussian(dist.mu[1:2], dist.sigma[1:2], 32).sample(_gen(11))
    assert torch.equal(rows[1:2], alone)


def _chi2_merged(counts: np.ndarray, probs: np.ndarray, n: int) -> float:
    """Chi-square p-value with bins of expected count < 5 merged into one (Cochran's rule)."""
    expected = probs * n
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    return chisquare_pvalue(obs[keep], exp[keep])


@pytest.mark.parametrize("mu,sigma", [(0.1, 0.2), (-0.93, 0.05), (1.3, 0.6), (0.0, 10.0), (0.37, 1e-3)])
def test_discretised_sample_distribution(mu: float, sigma: float) -> None:
    """200000 draws of one distribution vs its scipy float64 bin probabilities (chi-square, p > 1e-6
    with bins of expected count < 5 merged: the alpha for one test of 5; at this n a one-bin shift
    of the draws is rejected, checked below, so the test can fail)."""
    n, K = 200_000, 32
    dist = DiscretisedGaussian(torch.full((n,), mu), torch.full((n,), sigma), K)
    idx = ((dist.sample(_gen(17)).double() + 1) * K / 2 - 0.5).round().long()
    probs = _scipy_probs(torch.tensor([mu]), torch.tensor([sigma]), K)[0]
    counts = np.bincount(idx.numpy(), minlength=K)
    assert _chi2_merged(counts, probs, n) > 1e-6
    if probs.max() < 0.99:  # a shifted sample must fail (not testable for a point mass)
        assert _chi2_merged(np.roll(counts, 1), probs, n) < 1e-6


class _MaxNumel(TorchDispatchMode):
    """Records the largest tensor any aten op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


def _standin(mu: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A cheap network for discretised data: mu_eps = 0.5 tanh(3 mu), ln sigma_eps = -t."""
    return torch.stack([0.5 * torch.tanh(3 * mu), -t.reshape(-1, *[1] * (mu.dim() - 1)).expand_as(mu)], -1)


@pytest.mark.parametrize("solver,nfe", [(None, 10), ("bfn", 12), ("sde-bfn-solver++2", 10)])
def test_sampling_never_builds_the_bin_tensor(solver: str | None, nfe: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """sample() on discretised data (K = 256): no op returns a tensor larger than the chunk bound
    (2^18 elements, under half the n (K - 1) of the dense edge tensor here), and the dense formulas
    are never called; the same run with the dense class does exceed it (the check can fail), with
    equal samples."""
    K, shape = 256, (4, 3, 16, 16)
    n = math.prod(shape)
    limit = 1 << 18
    assert 2 * limit < n * (K - 1)
    process = DiscretisedBFN(math.sqrt(1e-3), K)
    kw = dict(shape=shape, readout_as="mode")

    def run() -> tuple[torch.Tensor, int]:
        with _MaxNumel() as rec:
            x, _ = sample(_standin, process, solver, nfe, generator=_gen(0), **kw)
        return x, rec.max_numel

    with monkeypatch.context() as m:
        m.setattr(DiscretisedGaussian, "_cdf_at_edges", lambda self: pytest.fail("dense CDF built on the sampling path"))
        x_new, peak_new = run()
    assert peak_new <= limit, peak_new
    monkeypatch.setattr(discretised_module, "DiscretisedGaussian", DenseGaussian)
    x_old, peak_old = run()
    assert peak_old >= n * (K - 1)
    if solver == "bfn":  # a sampled bin may differ where u falls on a boundary: compare almost all
        assert float((x_new == x_old).float().mean()) > 0.99
    else:
        assert float((x_new == x_old).float().mean()) > 0.999


def test_bfn_discretised_random_stream_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The original sampler on discretised data consumes the same random numbers as before (one uniform
    per element per step, then the sender noise): with the same generator the final states agree
    on (almost) every element, to float32 rounding."""
    process = DiscretisedBFN(math.sqrt(1e-3), 16)
    shape = (8, 64)
    x_new, info_new = sample(_standin, process, "bfn", 20, shape=shape, generator=_gen(3), return_trajectory=True)
    monkeypatch.setattr(discretised_module, "DiscretisedGaussian", DenseGaussian)
    x_old, info_old = sample(_standin, process, "bfn", 20, shape=shape, generator=_gen(3), return_trajectory=True)
    close = (info_new.trajectory[-1] - info_old.trajectory[-1]).abs() < 1e-4
    assert float(close.float().mean()) > 0.99


# ----------------------------------------------------------------------------------------
# K = 2 categorical
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-7), (torch.float64, 1e-15)])
def test_binary_softmax_is_a_sigmoid(dtype: torch.dtype, tol: float) -> None:
    """K = 2: sigmoid(+-(l_1 - l_0)) equals softmax (vs torch.softmax and the float64 formula
    exp(l_k) / sum exp, also for logit differences of +-100), sums to 1, and x0_hat = 2 p - 1."""
    logits = torch.randn(300, 2, generator=_gen(0), dtype=dtype) * 4
    logits[:10, 1] += 100.0
    logits[10:20, 0] += 100.0
    p = softmax_last(logits)
    torch.testing.assert_close(p, torch.softmax(logits, -1), rtol=0, atol=tol)
    l64 = logits.double()
    exact = torch.exp(l64 - l64.max(-1, keepdim=True).values)
    torch.testing.assert_close(p.double(), exact / exact.sum(-1, keepdim=True), rtol=0, atol=tol)
    assert bool(torch.isfinite(p).all())
    torch.testing.assert_close(p.sum(-1), torch.ones(300, dtype=dtype), rtol=0, atol=2 * tol)
    process = DiscreteBFN(3.0, 2)
    y = logits.reshape(3, 100, 2)
    torch.testing.assert_close(process.net_input(y), torch.softmax(y, -1), rtol=0, atol=tol)
    dist = process.output_distribution(y, y, 0.5)
    assert isinstance(dist, Categorical)
    torch.testing.assert_close(process.dist_to_x0(dist), 2 * torch.softmax(y, -1) - 1, rtol=0, atol=2 * tol)


def test_softmax_last_other_k_is_softmax() -> None:
    logits = torch.randn(5, 7, 3, generator=_gen(1))
    assert torch.equal(softmax_last(logits), torch.softmax(logits, -1))
    assert torch.equal(Categorical(logits).probs, torch.softmax(logits, -1))


def test_binary_discrete_sampling_runs() -> None:
    """Binary data through the default discrete solver and the original sampler."""
    process = DiscreteBFN(3.0, 2)
    model = lambda theta, t: 4 * (theta - 0.5)  # noqa: E731
    for solver in (None, "bfn"):
        x, info = sample(model, process, solver, 10, shape=(50, 6), generator=_gen(2))
        assert x.shape == (50, 6) and set(x.unique().tolist()) <= {0, 1} and info.nfe == 10


def test_continuous_unaffected() -> None:
    x, _ = sample(lambda mu, t: 0.1 * mu, ContinuousBFN(1e-3), None, 10, shape=(4, 5), generator=_gen(0))
    assert x.shape == (4, 5) and bool(torch.isfinite(x).all())
    assert kernels.discretised_gaussian is not None
