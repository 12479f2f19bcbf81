"""Exact oracles against brute force, and the original BFN sampler against exact samples."""
import itertools
import math

import pytest
import torch
from scipy import stats

from bfnsolvers import ContinuousBFN, DiscreteBFN, DiscretisedBFN
from bfnsolvers.oracles import DiscretisedOracle, GaussianMixtureOracle, MarkovChainOracle
from bfnsolvers.sampling import sample
from helpers import chisquare_pvalue

Z = 5.0


def importance_posterior_mean(process, prior_samples, z, t):
    """Self-normalised importance estimate of E[x0 | z_t] with the prior as proposal, and its standard error."""
    a, s = process.a(t).item(), process.s(t).item()
    x0 = prior_samples.double()
    logw = -((z.double() - a * x0) ** 2).sum(-1) / (2 * s * s)
    w = torch.softmax(logw, 0)
    mean = (w.unsqueeze(-1) * x0).sum(0)
    ess = 1 / (w ** 2).sum()
    se = ((w.unsqueeze(-1) * (x0 - mean) ** 2).sum(0) / ess).sqrt()
    return mean, se, ess


@pytest.mark.parametrize("t", [0.2, 0.45])
def test_gmm_posterior_matches_importance_sampling(t):
    process = ContinuousBFN(0.01, x_range=None)
    oracle = GaussianMixtureOracle(process, torch.tensor([[0.6, -0.3], [-0.4, 0.5], [0.0, 0.0]]), 0.25,
                                   torch.tensor([0.5, 0.3, 0.2]))
    g = torch.Generator().manual_seed(0)
    prior = oracle.sample(400000, g)
    for x in oracle.sample(3, g):
        z = process.flow_sample(x.unsqueeze(0), t, g)[0]
        mean, se, ess = importance_posterior_mean(process, prior, z, torch.tensor(t))
        assert ess > 1000
        exact = oracle(z.unsqueeze(0), torch.tensor([t], dtype=torch.float64))[0]
        assert ((exact - mean).abs() <= Z * se + 1e-6).all(), (exact, mean, se)


def test_discretised_posterior_matches_importance_sampling():
    process = DiscretisedBFN(0.05, 6)
    g = torch.Generator().manual_seed(1)
    oracle = DiscretisedOracle(process, torch.rand(3, 6, generator=g) + 0.05)
    prior = oracle.sample(400000, g)
    t = torch.tensor(0.3, dtype=torch.float64)
    for x in oracle.sample(3, g):
        z = process.flow_sample(x.unsqueeze(0).float(), t, g)[0].double()
        mean, se, _ = importance_posterior_mean(process, prior, z, t)
        probs = oracle(z.unsqueeze(0), t)[0]
        exact = (probs * process.centres(torch.float64)).sum(-1)
        assert ((exact - mean).abs() <= Z * se + 1e-6).all(), (exact, mean, se)


def test_markov_forward_backward_matches_enumeration():
    K, L = 3, 4
    process = DiscreteBFN(1.5, K)
    g = torch.Generator().manual_seed(2)
    oracle = MarkovChainOracle(process, torch.rand(K, generator=g) + 0.1, torch.rand(K, K, generator=g) + 0.1, L)
    y = process.flow_sample(oracle.sample(2, g), 0.6, g).double()
    seqs = torch.tensor(list(itertools.product(range(K), repeat=L)))
    log_joint = oracle.log_prob(seqs)                                     # (K^L,)
    brute = torch.zeros(2, L, K, dtype=torch.float64)
    for b in range(2):
        # p(x | y) proportional to p(x) prod_l N(y_l | beta (K e_{x_l} - 1), K beta I): Gaussian densities in full
        beta = process.beta(0.6).item()
        means = beta * process.to_x0(seqs).double()                        # (K^L, L, K)
        loglik = -((y[b] - means) ** 2).sum((-1, -2)) / (2 * K * beta)
        post = torch.softmax(log_joint + loglik, 0)
        for l in range(L):
            brute[b, l] = torch.zeros(K, dtype=torch.float64).index_add_(0, seqs[:, l], post)
    exact = oracle(torch.softmax(y, -1), torch.tensor(0.6)).exp()
    torch.testing.assert_close(exact, brute, rtol=1e-9, atol=1e-12)


def test_markov_entropy_rate_matches_monte_carlo():
    process = DiscreteBFN(1.0, 4)
    g = torch.Generator().manual_seed(3)
    oracle = MarkovChainOracle(process, torch.rand(4, generator=g), torch.rand(4, 4, generator=g), 6)
    nll = -oracle.log_prob(oracle.sample(50000, g)) / 6
    assert abs(nll.mean().item() - oracle.entropy_rate()) <= Z * nll.std().item() / math.sqrt(50000)


def ks_pvalues(a: torch.Tensor, b: torch.Tensor, n_proj: int = 8) -> list[float]:
    """Two-sample KS p-values on fixed random 1-D projections."""
    d = torch.randn(a.shape[1], n_proj, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    return [stats.ks_2samp((a.double() @ d[:, j]).numpy(), (b.double() @ d[:, j]).numpy()).pvalue for j in range(n_proj)]


def test_original_sampler_reproduces_gmm_and_degrades_with_few_steps():
    process = ContinuousBFN(0.01, x_range=None)
    oracle = GaussianMixtureOracle(process, torch.tensor([[0.6, -0.3], [-0.4, 0.5]]), 0.1)
    g = torch.Generator().manual_seed(4)
    exact = oracle.sample(3000, g)
    alpha = 1e-3 / 8                                                       # Bonferroni over 8 projections
    good, info = sample(oracle, process, "bfn", nfe=201, schedule="uniform", shape=(3000, 2), generator=g,
                        dtype=torch.float64)
    assert info.nfe == 201
    assert min(ks_pvalues(good, exact)) > alpha
    bad, _ = sample(oracle, process, "bfn", nfe=4, schedule="uniform", shape=(3000, 2), generator=g, dtype=torch.float64)
    assert min(ks_pvalues(bad, exact)) < alpha


def chi2_pvalue_first_pair(oracle: MarkovChainOracle, x: torch.Tensor) -> float:
    """Chi-square goodness of fit of the joint (x_1, x_2) counts against the exact chain."""
    K = oracle.process.num_classes
    counts = torch.bincount(x[:, 0] * K + x[:, 1], minlength=K * K).double()
    probs = (oracle.init.unsqueeze(1) * oracle.trans).flatten()
    keep = probs * x.shape[0] >= 5
    return chisquare_pvalue(counts[keep], probs[keep])


def test_original_sampler_reproduces_markov_chain_and_degrades_with_few_steps():
    process = DiscreteBFN(4.0, 3)
    oracle = MarkovChainOracle(process, torch.tensor([0.5, 0.3, 0.2]),
                               torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]]), 6)
    g = torch.Generator().manual_seed(5)
    good, _ = sample(oracle, process, "bfn", nfe=201, schedule="uniform", shape=(3000, 6), generator=g,
                     dtype=torch.float64, readout_as="sample")
    assert chi2_pvalue_first_pair(oracle, good) > 1e-3
    bad, _ = sample(oracle, process, "bfn", nfe=3, schedule="uniform", shape=(3000, 6), generator=g,
                    dtype=torch.float64, readout_as="sample")
    assert chi2_pvalue_first_pair(oracle, bad) < 1e-3
