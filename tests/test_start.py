"""sample(start=...): the zero start vs the prior-mean start (one call for E[x0]), the NFE they spend, and the
order of their error: KL(start || true marginal) against r = a/s at t_start, on the mixture oracle whose marginal
at t_start is known exactly."""
import math

import numpy as np
import pytest
import torch

import bfnsolvers
from bfnsolvers import ContinuousBFN
from bfnsolvers.denoiser import Denoiser
from bfnsolvers.metrics.oracle_metrics import start_kl_gmm
from bfnsolvers.sampling import prior_mean, prior_mean_time
from problems import gmm_problem, markov_problem


def _gaussian_kl(r, m, mu, std):
    """Closed form KL(N(r m, I) || N(r mu, (1 + r^2 std^2) I))."""
    d, c = len(m), 1 + r * r * std * std
    return 0.5 * (d / c - d + d * math.log(c) + r * r * float(((m - mu) ** 2).sum()) / c)


def test_start_kl_matches_closed_form_and_monte_carlo():
    m = torch.tensor([0.2, -0.1], dtype=torch.float64)
    mu = torch.tensor([[0.5, 0.3]], dtype=torch.float64)
    for r in (1e-3, 0.3, 2.0):
        assert start_kl_gmm(r, m, mu, 0.4) == pytest.approx(_gaussian_kl(r, m, mu[0], 0.4), rel=1e-6, abs=0)
    # a two-component mixture, KL by brute-force Monte Carlo on log densities (large r: no cancellation issue)
    means = torch.tensor([[1.0, 0.0], [-0.5, 0.8]], dtype=torch.float64)
    r, std, g = 1.5, 0.3, torch.Generator().manual_seed(0)
    u = r * m + torch.randn(400_000, 2, generator=g, dtype=torch.float64)
    c = 1 + r * r * std * std
    logq = -0.5 * ((u - r * m) ** 2).sum(-1)
    logp = torch.logsumexp(-0.5 * ((u[:, None] - r * means) ** 2).sum(-1) / c - math.log(c) + math.log(0.5), -1)
    mc = (logq - logp)
    assert start_kl_gmm(r, m, means, std) == pytest.approx(mc.mean().item(), abs=4 * mc.std().item() / 400_000 ** 0.5)


def _slopes(t_of_call):
    oracle, process = gmm_problem()
    den = Denoiser(oracle, process)
    lams = np.linspace(-8.0, -3.0, 6)
    rs, kl0, klm = [], [], []
    for lam in lams:
        t = float(process.t_of_lam(torch.tensor(lam, dtype=torch.float64)))
        r = float(process.a(t) / process.s(t))
        m_hat = den(torch.zeros(1, 2, dtype=torch.float64), t_of_call(t))[0] if t_of_call else \
            prior_mean(den, (1, 2), t, torch.float64, "cpu")[0]
        rs.append(r)
        kl0.append(start_kl_gmm(r, torch.zeros(2), oracle.means, oracle.std, oracle.weights))
        klm.append(start_kl_gmm(r, m_hat, oracle.means, oracle.std, oracle.weights))
    fit = lambda kl: np.polyfit(np.log(rs), np.log(kl), 1)[0]
    return fit(kl0), fit(klm), rs, kl0, klm


def test_start_error_orders_on_the_mixture_oracle():
    """zero start: KL ~ r^2 |E x|^2 / 2 (slope 2); prior-mean start: KL ~ r^4 tr(Cov^2) / 4 (slope 4), both for the
    exact E[x0] (the call at t = 0) and E[x0 | z = 0, t_start] (the call where the output is degenerate at 0)."""
    oracle, _ = gmm_problem()
    s0, sm, rs, kl0, klm = _slopes(None)
    assert 1.99 < s0 < 2.01 and 3.99 < sm < 4.01, (s0, sm)
    ex = (oracle.weights[:, None] * oracle.means).sum(0)
    assert kl0[0] == pytest.approx(rs[0] ** 2 * float((ex ** 2).sum()) / 2, rel=1e-3, abs=0)
    cov = torch.eye(2, dtype=torch.float64) * oracle.std ** 2 + \
        (oracle.weights[:, None, None] * (oracle.means - ex)[:, :, None] * (oracle.means - ex)[:, None, :]).sum(0)
    assert klm[0] == pytest.approx(rs[0] ** 4 * float((cov @ cov).trace()) / 4, rel=1e-2, abs=0)
    s0b, smb, *_ = _slopes(lambda t: t)
    assert 3.99 < smb < 4.01, smb


def test_prior_mean_start_spends_the_nfe_asked():
    oracle, process = gmm_problem()
    for nfe in (None, 5, 10):
        _, i0 = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(4, 2), start="zero")
        _, i1 = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(4, 2), start="prior-mean")
        assert i0.nfe == i1.nfe == (nfe or 10) and len(i1.times) == len(i0.times) - 1
    ts = [0.001, 0.01, 0.1, 0.5, 1.0]           # drop: 3 step calls + readout = 4, + 1 for the mean
    _, info = bfnsolvers.sample(oracle, process, "bfn-solver++2", schedule=ts, shape=(4, 2), start="prior-mean")
    assert info.nfe == 5
    _, info = bfnsolvers.sample(oracle, process, "bfn-solver++2", nfe=5, schedule=ts, shape=(4, 2), start="prior-mean")
    assert info.nfe == 5
    mk, mp = markov_problem()
    _, info = bfnsolvers.sample(mk, mp, nfe=6, shape=(4, 5), start="prior-mean")
    assert info.nfe == 6


def test_prior_mean_start_draws_a_times_the_mean():
    oracle, process = gmm_problem()
    t0 = 1e-2
    g = lambda: torch.Generator().manual_seed(3)
    ex = (oracle.weights[:, None] * oracle.means).sum(0)
    z0 = process.prior_state((5, 2), t0, g(), torch.float64)
    z1 = process.prior_state((5, 2), t0, g(), torch.float64, mean=ex.expand(5, 2))
    assert torch.allclose(z1 - z0, float(process.a(t0)) * ex.expand(5, 2))
    # the solvers' first step starts from the drawn state: compare the results with explicit z_start
    for start, z in (("zero", z0), ("prior-mean", z1)):
        a, _ = bfnsolvers.sample(oracle, process, "bfn-solver++2", nfe=6, shape=(5, 2), t_start=t0, start=start,
                                 generator=g(), dtype=torch.float64)
        b, _ = bfnsolvers.sample(oracle, process, "bfn-solver++2", nfe=6 - (start == "prior-mean"), t_start=t0,
                                 z_start=z, dtype=torch.float64)
        assert torch.allclose(a, b, atol=1e-12), start
    assert not torch.allclose(z0, z1, atol=1e-3)


def test_prior_mean_call_time():
    process = ContinuousBFN(1e-3, x_range=None)
    assert prior_mean_time(Denoiser(lambda mu, t: mu, process, output_type="eps"), 0.002) == 0.002
    assert prior_mean_time(Denoiser(lambda mu, t: mu, process, output_type="x"), 0.002) == 0.0


def test_start_bad_input():
    oracle, process = gmm_problem()
    with pytest.raises(ValueError, match="start"):
        bfnsolvers.sample(oracle, process, nfe=5, shape=(2, 2), start="mean")
    with pytest.raises(ValueError, match="start"):
        bfnsolvers.sample(oracle, process, "bfn", nfe=5, shape=(2, 2), start="prior-mean")
    with pytest.raises(ValueError, match="start"):
        bfnsolvers.sample(oracle, process, "reference", shape=(2, 2), start="prior-mean")
    with pytest.raises(ValueError, match="start"):
        bfnsolvers.sample(oracle, process, nfe=5, z_start=torch.zeros(2, 2), start="prior-mean")
    with pytest.raises(ValueError, match="nfe"):
        bfnsolvers.sample(oracle, process, nfe=1, shape=(2, 2), start="prior-mean")


def test_energy_distance_brute_force_and_closed_form():
    from bfnsolvers.metrics.oracle_metrics import energy_distance
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 3, generator=g), torch.randn(5, 3, generator=g) + 0.5
    d = lambda a, b: math.sqrt(sum((float(a[k]) - float(b[k])) ** 2 for k in range(3)))
    xy = sum(d(a, b) for a in x for b in y) / 35
    xx = sum(d(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / 42
    yy = sum(d(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    assert energy_distance(x, y) == pytest.approx(2 * xy - xx - yy, rel=1e-6)
    assert energy_distance(x, y, unbiased=False) == pytest.approx(2 * xy - xx * 6 / 7 - yy * 4 / 5, rel=1e-6)
    # 1-D N(0, 1) vs N(m, 1): E|X - Y| for X - Y ~ N(-m, 2), E|X - X'| = 2 / sqrt(pi)
    m, s = 0.8, math.sqrt(2)
    e_xy = s * math.sqrt(2 / math.pi) * math.exp(-m * m / (2 * s * s)) + m * math.erf(m / (s * math.sqrt(2)))
    exact = 2 * e_xy - 2 * 2 / math.sqrt(math.pi)
    x, y = torch.randn(3000, 1, generator=g, dtype=torch.float64), m + torch.randn(3000, 1, generator=g, dtype=torch.float64)
    assert energy_distance(x, y) == pytest.approx(exact, rel=0.1)
    with pytest.raises(ValueError, match="x and y"):
        energy_distance(x, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="max_points"):
        energy_distance(x, y, max_points=1)


def test_default_start_rule_for_discrete_data(monkeypatch):
    """DEFAULT_START (discrete and discretised data) applies to named grids whose nfe - 1 calls still make a grid;
    "zero" today."""
    import bfnsolvers.defaults as defaults
    from bfnsolvers.defaults import DEFAULT_START
    assert DEFAULT_START == "zero"
    oracle, process = markov_problem()
    g = lambda: torch.Generator().manual_seed(0)
    monkeypatch.setattr(defaults, "DEFAULT_START", "prior-mean")
    x, info = bfnsolvers.sample(oracle, process, "bfn-solver++2", nfe=10, shape=(4, 5), generator=g())
    y, _ = bfnsolvers.sample(oracle, process, "bfn-solver++2", nfe=10, shape=(4, 5), generator=g(), start="prior-mean")
    assert info.nfe == 10 and len(info.times) == 9 and torch.equal(x, y)
    _, info = bfnsolvers.sample(oracle, process, "bfn-solver++2", nfe=2, shape=(4, 5))   # no call to spare: zero
    assert info.nfe == 2 and len(info.times) == 2     # one step and the final call at t = 1 (the discrete default)
    ts = [0.001, 0.1, 0.5, 1.0]
    _, info = bfnsolvers.sample(oracle, process, "bfn-solver++2", schedule=ts, shape=(4, 5))   # a list: zero
    assert info.nfe == 4 and len(info.times) == 4     # three steps and the final call at t = 1
    _, info = bfnsolvers.sample(oracle, process, "bfn", nfe=5, shape=(4, 5))       # from the prior: zero
    assert info.nfe == 5


def test_continuous_start_rule_values():
    """The rule's rows: NFE ascending from 1, valid starts, lambda(t_start) falling with NFE (a larger NFE never
    starts later); the rule reads the last row at or below nfe, None is NFE 10, lambda is capped at
    lambda(1) - MIN_SPAN."""
    from bfnsolvers.defaults import CONTINUOUS_START_RULE, MIN_SPAN, default_continuous_start
    nfes = [r[0] for r in CONTINUOUS_START_RULE]
    assert nfes[0] == 1 and nfes == sorted(set(nfes))
    assert all(r[1] in ("zero", "prior-mean") for r in CONTINUOUS_START_RULE)
    lams = [r[2] for r in CONTINUOUS_START_RULE]
    assert lams == sorted(lams, reverse=True)
    lam = lambda p, t: float(p.lam(torch.tensor(t, dtype=torch.float64)))
    for sigma_1 in (1e-4, 1e-3, 1e-2):
        process = ContinuousBFN(sigma_1, x_range=None)
        for k in range(1, 301):
            row = [r for r in CONTINUOUS_START_RULE if r[0] <= k][-1]
            start, t0 = default_continuous_start(process, k)
            assert start == row[1] and lam(process, t0) == pytest.approx(row[2], abs=1e-9)   # absolute lambda
        assert default_continuous_start(process, None) == default_continuous_start(process, 10)
    wide = ContinuousBFN(0.5, x_range=None)                           # lambda(1) = 0.55: the cap
    _, t0 = default_continuous_start(wide, 10)
    assert lam(wide, t0) == pytest.approx(float(wide.lam(1.0)) - MIN_SPAN, abs=1e-9)


def test_sample_uses_the_continuous_start_rule_and_explicit_arguments_win():
    from bfnsolvers.defaults import default_continuous_start, default_t_start
    oracle, process = gmm_problem()
    g = lambda: torch.Generator().manual_seed(0)
    for nfe in (4, 5, 10, 20, 100):
        start, t0 = default_continuous_start(process, nfe)
        assert default_t_start(process, "bfn-unipc3", nfe) == t0
        x, info = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(6, 2), generator=g(), dtype=torch.float64)
        y, _ = bfnsolvers.sample(oracle, process, "bfn-unipc3", nfe, "logsnr", (6, 2), t_start=t0, start=start,
                                 final="drop", generator=g(), dtype=torch.float64)
        assert info.nfe == nfe and float(info.times[0]) == pytest.approx(t0, rel=1e-12) and torch.equal(x, y)
        assert len(info.times) == nfe - (start == "prior-mean")      # "drop": nfe (or nfe - 1) steps, last dropped
        for other in ("zero", "prior-mean"):                          # an explicit start wins
            _, info = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(6, 2), start=other)
            assert info.nfe == nfe and len(info.times) == nfe - (other == "prior-mean")
        _, info = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(6, 2), t_start=0.02)    # an explicit t_start wins
        assert float(info.times[0]) == pytest.approx(0.02) and len(info.times) == nfe - (start == "prior-mean")
    _, info = bfnsolvers.sample(oracle, process, shape=(6, 2))                     # nfe None: the rule at NFE 10
    assert float(info.times[0]) == pytest.approx(default_continuous_start(process, 10)[1], rel=1e-12)
    assert default_t_start(ContinuousBFN(1e-3), "bfn", 10) == 0.0                  # the original sampler: the prior


def test_continuous_start_rule_is_the_committed_choice():
    """CONTINUOUS_START_RULE gives, at every NFE of benchmarks/results/families/choose.md, the start its stated
    rule picked on the choosing half (the "- start" line), but at NFE 4 (defaults.py: the digits model's veto)."""
    import re
    from pathlib import Path
    from bfnsolvers.defaults import default_continuous_start
    text = (Path(__file__).resolve().parents[1] / "benchmarks/results/families/choose.md").read_text()
    line = next(x for x in text.splitlines() if x.startswith("- start"))
    picks = re.findall(r"NFE (\d+): `bfn-unipc3/(zero|prior-mean)/lam(-?[\d.]+)`", line)
    assert len(picks) >= 9
    for sigma_1 in (1e-4, 1e-2):
        process = ContinuousBFN(sigma_1, x_range=None)
        for nfe, start, lam in picks:
            if nfe == "4":          # the documented exception: the digits model vetoes lambda = -1 at NFE 4
                assert (start, lam) == ("zero", "-1")
                start, lam = "zero", "-2"
            got, t0 = default_continuous_start(process, int(nfe))
            assert got == start and float(process.lam(torch.tensor(t0, dtype=torch.float64))) == pytest.approx(float(lam))


def test_default_lower_order_final():
    """Continuous: lower order at the end for 4-9 steps (not at NFE <= 4); discretised: below 10 steps (DPM-Solver's
    rule); discrete: never. sample() applies it: at NFE 4 (3 steps) bfn-unipc3 equals lower_order_final=False."""
    from bfnsolvers.defaults import default_lower_order_final
    assert [default_lower_order_final("continuous", n) for n in range(1, 12)] == [False] * 3 + [True] * 6 + [False] * 2
    assert [default_lower_order_final("discretised", n) for n in (1, 3, 9, 10)] == [True, True, True, False]
    assert not any(default_lower_order_final("discrete", n) for n in range(1, 12))
    oracle, process = gmm_problem()
    g = lambda: torch.Generator().manual_seed(0)
    for nfe, lof in ((4, False), (5, True)):
        x, info = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(6, 2), generator=g(), dtype=torch.float64)
        y, _ = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(6, 2), generator=g(), dtype=torch.float64,
                                 lower_order_final=lof)
        z, _ = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(6, 2), generator=g(), dtype=torch.float64,
                                 lower_order_final=not lof)
        assert len(info.times) == nfe and torch.equal(x, y) and not torch.equal(x, z)


def test_discrete_start_by_nfe_maps_eta_to_t():
    """The discrete start by NFE (``DISCRETE_RULE``'s eta in the natural time u, zero start): u = 0.03 at NFE 4-14
    (the first choice); default_t_start maps it to t through the process's natural time; the original sampler
    starts at the prior. The rule's rows themselves: tests/test_defaults_discrete.py."""
    from bfnsolvers import DiscreteBFN
    from bfnsolvers.defaults import DEFAULT_START, default_discrete_eta, default_start, default_t_start, discrete_row
    assert [default_discrete_eta(k) for k in (4, 5, 6, 8, 10, 14)] == [0.03] * 6
    assert all(default_discrete_eta(k) == discrete_row(k).eta for k in range(1, 301))
    process = DiscreteBFN(3.0, 7)                             # beta = beta_1 t^2: u = t
    for k in (10, 20, 50, 100):
        assert default_start(process, k) == DEFAULT_START == "zero"
        t0 = default_t_start(process, "sde-bfn-unipc3-t", k)
        assert t0 == pytest.approx(default_discrete_eta(k), rel=1e-12)
        u = math.sqrt(float(process.beta(torch.tensor(t0, dtype=torch.float64))) / float(process.beta(1.0)))
        assert u == pytest.approx(default_discrete_eta(k), rel=1e-9)
    assert default_t_start(process, "bfn", 50) == 0.0
    mk, mp = markov_problem()
    _, info = bfnsolvers.sample(mk, mp, nfe=50, shape=(4, 5), t_start=0.2)     # an explicit t_start wins
    assert info.nfe == 50 and float(info.times[0]) == pytest.approx(0.2)
