"""The random oracle families: deterministic per seed, covering the stated ranges, split even/odd."""
import math

import pytest
import torch

from bfnsolvers.oracle_families import (FAMILY_SIZE, MARKOV_RANGES, MIXTURE_RANGES, beta_usual, markov_member,
                                        members, mixture_member, split)


def test_deterministic_per_seed_and_global_rng_untouched():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    for make in (mixture_member, markov_member):
        a, b, c = make(3), make(3), make(4)
        for x, y in ((a.oracle.sample(50, torch.Generator().manual_seed(1)), b.oracle.sample(50, torch.Generator().manual_seed(1))),):
            assert torch.equal(x, y)
        assert a.params == b.params and a.params != c.params
    assert torch.equal(torch.rand(1), before)
    assert torch.equal(mixture_member(5).oracle.means, mixture_member(5).oracle.means)
    assert torch.equal(markov_member(5).oracle.trans, markov_member(5).oracle.trans)


def _covers(values, lo, hi, log):
    f = (lambda v: math.log(v)) if log else (lambda v: v)
    span = f(hi) - f(lo)
    return f(min(values)) - f(lo) < 0.15 * span, f(hi) - f(max(values)) < 0.15 * span


@pytest.mark.parametrize("which", ["choosing", "reporting"])
def test_mixture_family_covers_its_ranges(which):
    ms = [mixture_member(s) for s in members("mixture", which)]
    assert len(ms) == FAMILY_SIZE // 2 >= 20 and all(m.split == which for m in ms)
    for name, (lo, hi) in MIXTURE_RANGES.items():
        vals = [m.params[name] for m in ms]
        assert all(lo <= v <= hi for v in vals), name
        log = name in ("dim", "std", "weight_concentration", "sigma_1")
        assert all(_covers(vals, lo, hi, log)), (name, min(vals), max(vals))
    for m in ms:
        o = m.oracle
        assert o.means.shape == (m.params["components"], m.params["dim"]) and o.std == m.params["std"]
        assert o.means.abs().max() <= m.params["edge"] and m.process.sigma_1 == pytest.approx(m.params["sigma_1"])
        near = (o.means.abs() >= 0.9 * m.params["edge"] - 1e-12).all(-1).sum()
        assert near >= m.params["edge_components"]
    assert sum(m.params["edge_components"] for m in ms) > 0


@pytest.mark.parametrize("which", ["choosing", "reporting"])
def test_markov_family_covers_its_ranges(which):
    ms = [markov_member(s) for s in members("markov", which)]
    assert len(ms) >= 20
    for name, (lo, hi) in MARKOV_RANGES.items():
        vals = [m.params[name] for m in ms]
        assert all(lo <= v <= hi for v in vals), name
        assert all(_covers(vals, lo, hi, True)), (name, min(vals), max(vals))
    for m in ms:
        k, length = m.params["num_classes"], m.params["length"]
        assert m.oracle.trans.shape == (k, k) and m.oracle.length == length and m.shape == (length,)
        assert m.process.beta_1 == pytest.approx(beta_usual(k) * m.params["beta_factor"])
    peaks = [m.oracle.trans.max(-1).values.mean().item() for m in ms]
    assert min(peaks) < 0.5 and max(peaks) > 0.8          # flat and peaked transition rows


def test_beta_usual_through_the_published_values():
    assert beta_usual(2) == pytest.approx(3.0) and beta_usual(27) == pytest.approx(0.75 ** 2)


def test_split_and_bad_input():
    assert split(0) == "choosing" and split(7) == "reporting"
    assert members("mixture", "reporting", 6) == [1, 3, 5]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            mixture_member(bad)
    with pytest.raises(ValueError, match="family"):
        members("gmm")
    with pytest.raises(ValueError, match="which"):
        members("markov", "odd")
    assert mixture_member(FAMILY_SIZE + 3).params["dim"] >= 2      # beyond the hypercube: independent draws


def test_families_benchmark_runs_and_resumes(tmp_path):
    import json
    import runpy
    from pathlib import Path
    mod = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "families.py"))
    common = ["--members", "1", "--samples", "40", "--seeds", "0", "--floor-pairs", "2", "--out", str(tmp_path)]
    argv = ["report", "--nfe", "5", "10", "--ode-nfe", "20", "--exact-nfe", "10"] + common
    mod["main"](argv)
    rows = (tmp_path / "results.jsonl").read_text().splitlines()
    # 2 floors, 2 members x (7 configs x 2 NFE + the default at NFE 20 + one dopri5 from NFE 10's start)
    assert len(rows) == 2 + 2 * (7 * 2 + 1 + 1)
    assert all(json.loads(r)["kind"] in ("floor", "cell") for r in rows)
    mod["main"](argv)                                      # resumed: nothing to add
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(rows)
    report = (tmp_path / "report.md").read_text()
    assert "held out (odd seeds)" in report and "default beats published, same NFE" in report
    assert "ODE monotonicity" in report and "dopri5/default" in report
    choose = ["choose", "--nfe", "4", "--configs", "bfn-unipc3/zero/lam-2", "bfn-unipc3/prior-mean/lam-3",
              "bfn-unipc3/rule/rule/lof0"] + common
    mod["main"](choose)                                    # the choosing member only: 3 configs x 1 NFE
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(rows) + 3
    text = (tmp_path / "choose.md").read_text()
    assert "- start (" in text and "`bfn-unipc3/zero/lam-2`" in text and "- solver / final order" in text
