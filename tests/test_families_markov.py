"""The Markov-family benchmark (benchmarks/families_markov.py), its shared tables (benchmarks/family_tables.py) and
the discrete prior-mean start: y ~ N(beta (K p - 1), beta K I) with p the chain's marginals, whose KL to the true
marginal of y falls as r^4 (r = sqrt(beta / K)) where the zero start's falls as r^2."""
import json
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bfnsolvers
from bfnsolvers.denoiser import Denoiser
from bfnsolvers.metrics.oracle_metrics import start_kl_gmm
from bfnsolvers.oracle_families import markov_member
from bfnsolvers.oracles import MarkovChainOracle
from bfnsolvers.processes import DiscreteBFN
from bfnsolvers.sampling import prior_mean

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import family_tables as ft  # noqa: E402


def _bench():
    return runpy.run_path(str(BENCH / "families_markov.py"))


def test_family_tables():
    assert ft.noise_floor([3.0, 1.0, 100.0]) == 3.0                 # the median: one heavy tail does not move it
    assert ft.geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert ft.median_worst([None, 1.0, 3.0, 2.0]) == (2.0, 3.0) and ft.median_worst([None]) is None
    assert ft.fraction([True, False, None, True]) == "2/3"
    for bad in ([], [1.0, 0.0]):
        with pytest.raises(ValueError, match="values"):
            ft.geometric_mean(bad)
    with pytest.raises(ValueError, match="values"):
        ft.noise_floor([])


def test_config_names_and_feasibility():
    mod = _bench()
    Config, parse = mod["Config"], mod["parse_config"]
    for name in mod["CANDIDATES"] + mod["PUBLISHED"]:
        assert parse(name).name == name
    assert len(set(mod["CANDIDATES"])) == len(mod["CANDIDATES"])
    mid = Config("bfn-solver2-midpoint").name                 # two calls a step, the readout one: odd NFE only
    assert [k for k in (4, 5, 6, 15) if mod["feasible"](mid, k)] == [5, 15]
    assert mod["feasible"](Config("bfn-unipc3-t", start="prior-mean").name, 4)
    # "ours" runs sample()'s defaults: the same samples as its Config spelled out
    member = markov_member(27)
    a = mod["run_cell"](member, "ours", 6, 8, 2)
    b = mod["run_cell"](member, mod["default_config"]().name, 6, 8, 2)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and a[0].shape == (8, member.params["length"])


def test_rule_picks_the_lowest_median_geometric_mean():
    mod = _bench()
    rows = [{"kind": "floor", "member": m, "samples": 10, "gap": 0.1, "tv": 0.2} for m in (0, 2, 4)]
    truth = {"a": [1.0, 1.0, 9.0], "b": [2.0, 2.0, 2.0]}       # a: median 1 (one bad member), b: 2 everywhere
    for c, vals in truth.items():
        for m, v in zip((0, 2, 4), vals):
            for k in (5, 10):
                rows.append({"kind": "cell", "member": m, "config": c, "nfe": k, "samples": 10,
                             "gap": [0.1 * v, 0.1 * v], "tv": [0.3 * v, 0.1 * v]})
    s = mod["Scores"](rows, 10)
    assert s.score(4, "a", 5) == pytest.approx(9.0)            # the mean over sets, then the ratio: 9 and 9
    ranked = mod["choose"](s, [0, 2, 4], ["a", "b"], (5, 10))
    assert [c for _, c, _ in ranked] == ["a", "b"] and ranked[0][0] == pytest.approx(0.0)


def test_rule_by_nfe_keeps_the_default_unless_beaten_beyond_the_noise():
    """The 8dbdc81 default stays unless a rival's paired log ratio to it is below -z s.e. (z = 2.24 for two rivals):
    a consistent 25% gain switches, a better median from an inconsistent rival does not; among rivals beyond the
    noise the smallest median; the original sampler's pick comes with the pick without it; no cells, no pick."""
    mod = _bench()
    inc = mod["incumbent"](15)
    assert inc == mod["incumbent"](20) == "sde-bfn-unipc3-t/uniform/eta=0.03/denoise/full/zero/mean"
    a, b = "sde-bfn-solver2-s/uniform/eta=0.001/drop/full/zero/mean", "sde-bfn-unipc3-t/uniform/eta=0.01/drop/full/zero/mean"
    bfn = "bfn/uniform/eta=0/denoise/full/zero/mean"
    truth = {(inc, 15): (2.0, 2.0, 2.0), (a, 15): (1.5, 1.6, 1.55), (b, 15): (1.0, 1.0, 9.0),   # 15: a, not b
             (inc, 20): (2.0, 2.0, 2.0), (a, 20): (1.0, 3.0, 1.9), (b, 20): (1.9, 1.9, 1.95)}  # 20: b, not a
    rows = [{"kind": "floor", "member": m, "samples": 10, "gap": 0.1, "tv": 0.2} for m in (0, 2, 4)]

    def cells(table):
        return [{"kind": "cell", "member": m, "config": c, "nfe": k, "samples": 10, "gap": [0.1 * v] * 2,
                 "tv": [0.2 * v] * 2} for (c, k), vs in table.items() for m, v in zip((0, 2, 4), vs)]

    rows += cells(truth)
    g = mod["pick_by_nfe"].__globals__
    g["HIGH_NFES"], g["high_candidates"] = (15, 20, 50), lambda k: [mod["incumbent"](k), a, b]
    picks = mod["pick_by_nfe"](mod["Scores"](rows, 10), [0, 2, 4])
    assert [(k, c, o) for k, c, o, *_ in picks] == [(15, a, a), (20, b, b)]         # 50: no cells, no pick
    assert picks[1][3][b] == pytest.approx(1.9) and picks[0][4][b][0] == pytest.approx(
        (2 * math.log(0.5) + math.log(4.5)) / 3)
    g["high_candidates"] = lambda k: [mod["incumbent"](k), a, b, bfn]
    rows += cells({(bfn, 15): (1.2, 1.25, 1.3), (bfn, 20): (9.0, 9.0, 9.0)})
    picks = mod["pick_by_nfe"](mod["Scores"](rows, 10), [0, 2, 4])
    assert [(k, c, o) for k, c, o, *_ in picks] == [(15, bfn, a), (20, b, b)]
    assert mod["beyond_noise"](2) == pytest.approx(2.2414, abs=1e-4)


def test_set_split_noise():
    """Set 0 reads 1x the floor on both metrics on every member, set 1 2x: medians 1 and 2, noise 1 / 1.5."""
    mod = _bench()
    rows = [{"kind": "floor", "member": m, "samples": 10, "gap": 0.1, "tv": 0.2} for m in (0, 2, 4)]
    rows += [{"kind": "cell", "member": m, "config": "c", "nfe": 5, "samples": 10, "gap": [0.1, 0.2],
              "tv": [0.2, 0.4]} for m in (0, 2, 4)]
    s = mod["Scores"](rows, 10)
    assert mod["set_split_noise"](s, [0, 2, 4], ["c", "missing"], 5) == pytest.approx(1 / 1.5)
    assert mod["set_split_noise"](s, [0, 2, 4], ["missing"], 5) is None


def test_paired_log_ratio():
    """Config a reads 2x, 4x, 8x the floor on three members, b 1x everywhere: log ratios log 2, log 4, log 8."""
    mod = _bench()
    rows = [{"kind": "floor", "member": m, "samples": 10, "gap": 0.1, "tv": 0.2} for m in (0, 2, 4)]
    for c, vals in (("a", (2.0, 4.0, 8.0)), ("b", (1.0, 1.0, 1.0))):
        rows += [{"kind": "cell", "member": m, "config": c, "nfe": 5, "samples": 10, "gap": [0.1 * v] * 2,
                  "tv": [0.2 * v] * 2} for m, v in zip((0, 2, 4), vals)]
    mean, se = mod["paired_log_ratio"](mod["Scores"](rows, 10), [0, 2, 4], "a", "b", 5)
    d = [math.log(2), math.log(4), math.log(8)]
    assert mean == pytest.approx(math.log(4)) and se == pytest.approx(np.std(d, ddof=1) / math.sqrt(3))


def test_benchmark_runs_and_resumes(tmp_path):
    mod = _bench()
    mod["main"].__globals__["CANDIDATES"] = mod["CANDIDATES"][:1]
    argv = ["--members", "1", "--samples", "20", "--floor-sets", "3", "--stage", "choose", "--out", str(tmp_path)]
    mod["main"](argv)
    rows = (tmp_path / "results.jsonl").read_text().splitlines()
    assert sum(json.loads(r)["kind"] == "floor" for r in rows) == 2
    mod["main"](argv)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(rows)
    assert "The rule (choosing half)" in (tmp_path / "report.md").read_text()


def test_discrete_prior_mean_start_is_beta_times_k_marginals_minus_one():
    """One call at the prior gives x0_hat = K p_l - 1 with p_l = init trans^l (the chain's marginals), so the start
    y ~ N(beta (K p - 1), beta K I) keeps the mean beta K (p - 1/K) that the zero start drops."""
    process = DiscreteBFN(0.8, 3)
    trans = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]], dtype=torch.float64)
    init = torch.tensor([0.5, 0.2, 0.3], dtype=torch.float64)
    oracle = MarkovChainOracle(process, init, trans, 4)
    marg = torch.stack([init @ torch.linalg.matrix_power(trans, l) for l in range(4)])
    m = prior_mean(Denoiser(oracle, process), (2, 4, 3), 0.1, torch.float64, "cpu")
    assert torch.allclose(m, (3 * marg - 1).expand(2, 4, 3), atol=1e-12)
    t0, n = 0.3, 200_000
    y = process.prior_state((n, 4, 3), t0, torch.Generator().manual_seed(0), torch.float64, mean=m[:1].expand(n, 4, 3))
    beta = float(process.beta(t0))
    se = math.sqrt(3 * beta / n)
    assert (y.mean(0) - beta * (3 * marg - 1)).abs().max() < 5 * se
    assert y.var(0).mean().item() == pytest.approx(3 * beta, rel=0.01)


def test_discrete_start_error_orders():
    """One position over K = 3 classes: in units of s = sqrt(K beta) the true marginal of y is the mixture of point
    masses r x_k + eps, x_k = K e_k - 1, r = sqrt(beta / K): KL slope 2 from the zero start, 4 from the prior mean
    (the continuous result with zero-width components; start_kl_gmm with std -> 0)."""
    p = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    xs = 3 * torch.eye(3, dtype=torch.float64) - 1
    mean = p @ xs
    rs = np.exp(np.linspace(math.log(1e-3), math.log(3e-2), 5))
    kl0 = [start_kl_gmm(float(r), torch.zeros(3), xs, 1e-9, p) for r in rs]
    klm = [start_kl_gmm(float(r), mean, xs, 1e-9, p) for r in rs]
    s0 = np.polyfit(np.log(rs), np.log(kl0), 1)[0]
    sm = np.polyfit(np.log(rs), np.log(klm), 1)[0]
    assert 1.99 < s0 < 2.01 and 3.95 < sm < 4.05, (s0, sm)
    cov = (p[:, None, None] * (xs - mean)[:, :, None] * (xs - mean)[:, None, :]).sum(0)
    assert kl0[0] == pytest.approx(rs[0] ** 2 * float(mean @ mean) / 2, rel=1e-2)
    assert klm[0] == pytest.approx(rs[0] ** 4 * float((cov @ cov).trace()) / 4, rel=2e-2)
