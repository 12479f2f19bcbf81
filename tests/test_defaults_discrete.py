"""The discrete defaults by NFE (``defaults.DISCRETE_RULE``): the table is what its stated rule picks from the
committed results, and ``sample()`` resolves it (explicit arguments win)."""
import re
import statistics
from pathlib import Path

import pytest
import torch

import bfnsolvers
from bfnsolvers import DiscreteBFN
from bfnsolvers.defaults import (DEFAULT_NFE, DISCRETE_RULE, default_final, default_solver,
                                 default_t_start, discrete_row, resolve_defaults, rule_row, start_row)
from problems import markov_problem

REPORT = Path(__file__).resolve().parents[1] / "benchmarks/results/families-markov/report.md"


def _name(row) -> str:
    """The benchmark's configuration name of a rule row (uniform grid, full order, zero start, mean readout)."""
    return f"{row.solver}/uniform/eta={0 if row.solver == 'bfn' else row.eta:g}/{row.final}/full/zero/mean"


def _section_table(title: str, cell) -> tuple[list[int], dict[str, list]]:
    """A table of the report's "The rule by NFE" section whose header follows ``title``: (NFEs, {config: cells})."""
    text = REPORT.read_text().split("## The rule by NFE (choosing half)")[1].split("\n## ")[0]
    text = text.split(title)[1] if title else text
    lines = text.splitlines()
    i = next(j for j, x in enumerate(lines) if x.startswith("| config |"))
    nfes = [int(k) for k in re.findall(r"NFE (\d+)", lines[i])]
    table = {}
    for line in lines[i + 2:]:
        m = re.match(r"\| `([^`]+)` \|(.*)\|$", line)
        if not m:
            break
        table[m.group(1)] = [None if v.strip() == "-" else cell(v) for v in m.group(2).split("|")]
    return nfes, table


def _eta(name: str) -> float:
    return float(name.split("/")[2][len("eta="):])


def test_discrete_rule_is_the_committed_choice():
    """At every NFE of the report's rule tables: the default of commit 8dbdc81 stays unless a rival's paired mean log
    ratio to it is below -z standard errors (z the one-sided 2.5% normal quantile, Bonferroni over the rivals at that
    NFE), among those the smallest median; the same without the original sampler gives the eta of its rows.
    DISCRETE_RULE holds each pick from its NFE to the next."""
    nfes, medians = _section_table("", float)
    nfes2, paired = _section_table("Paired mean log ratio", lambda v: tuple(map(float, v.split("±"))))
    assert nfes == nfes2 == [15, 20, 50, 100] and len(medians) >= 10 and len(paired) >= 8

    def rule(k: int, i: int, with_bfn: bool) -> str:
        rivals = {c: p[i] for c, p in paired.items() if p[i] is not None and (with_bfn or not c.startswith("bfn/"))}
        kept = [c for c, v in medians.items() if v[i] is not None and (c not in paired or paired[c][i] is None)]
        assert len(kept) == 1, (k, kept)                 # the one candidate with a median and no ratio to itself
        z = statistics.NormalDist().inv_cdf(1 - 0.025 / len(rivals))
        better = [c for c, (mean, se) in rivals.items() if mean + z * se < 0]
        return min(better, key=lambda c: medians[c][i]) if better else kept[0]

    picks = {k: (rule(k, i, True), _eta(rule(k, i, False))) for i, k in enumerate(nfes)}
    for k in range(1, 301):
        row = discrete_row(k)
        below = [n for n in nfes if n <= k]
        if not below:
            assert row == DISCRETE_RULE[0]
            continue
        pick, eta = picks[below[-1]]
        assert _name(row) == pick, k
        if row.solver == "bfn":          # its eta: the start of a solver named explicitly, the pick without it
            assert row.eta == eta, k


def test_discrete_rule_rows():
    """Rows ascending from NFE 1, uniform-grid solvers for discrete data, valid finals, eta in (0, 1); the lookup
    reads the last row at or below nfe (None: DEFAULT_NFE, below the first row: the first)."""
    nfes = [r.nfe for r in DISCRETE_RULE]
    assert nfes[0] == 1 and nfes == sorted(set(nfes))
    for r in DISCRETE_RULE:
        assert "discrete" in bfnsolvers.solvers.get_solver(r.solver).data
        assert r.final in ("denoise", "drop", "state") and 0 < r.eta < 1
    assert discrete_row(None) == discrete_row(DEFAULT_NFE) and discrete_row(0) == DISCRETE_RULE[0]
    for k in range(1, 301):
        assert discrete_row(k) == [r for r in DISCRETE_RULE if r.nfe <= k][-1]
    assert rule_row(((1, "a"), (5, "b")), 4) == (1, "a") and rule_row(((1, "a"), (5, "b")), 5) == (5, "b")
    assert start_row("discrete", 50) == ("zero", discrete_row(50).eta)
    with pytest.raises(ValueError, match="kind"):
        start_row("discretised", 10)


@pytest.mark.parametrize("nfe", [10, 15, 20, 50, 100])
def test_sample_resolves_the_rule_and_explicit_arguments_win(nfe):
    oracle, process = markov_problem()
    row = discrete_row(nfe)
    t0 = float(process.t_of_natural_time(torch.tensor(row.eta, dtype=torch.float64)))
    t_row = 0.0 if row.solver == "bfn" else t0           # the original sampler starts at the prior
    assert resolve_defaults(process, None, None, None, None, nfe) == (row.solver, "uniform", t_row, row.final)
    assert default_solver(process, nfe) == row.solver and default_final(row.solver, process, nfe) == row.final
    assert default_t_start(process, row.solver, nfe) == t_row
    g = lambda: torch.Generator().manual_seed(0)
    x, info = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(4, 5), generator=g(), dtype=torch.float64)
    y, _ = bfnsolvers.sample(oracle, process, row.solver, nfe, "uniform", (4, 5), t_start=t_row, final=row.final,
                             start="zero", generator=g(), dtype=torch.float64)
    assert torch.equal(x, y) and info.nfe == nfe and info.solver == row.solver and info.final == row.final
    assert float(info.times[0]) == pytest.approx(t_row, rel=1e-12)
    other = next(s for s in ("bfn-unipc3-t", "sde-bfn-solver2-s") if s != row.solver)
    _, info = bfnsolvers.sample(oracle, process, other, nfe=nfe, shape=(4, 5))           # an explicit solver wins,
    assert info.solver == other and info.final == row.final                               # the rest stays the rule's
    assert float(info.times[0]) == pytest.approx(t0, rel=1e-12)                           # (from eta, not t = 0)
    for final in ("denoise", "drop"):                                                     # an explicit final wins
        _, info = bfnsolvers.sample(oracle, process, nfe=nfe, shape=(4, 5), final=final)
        assert info.final == final and info.nfe == nfe and info.solver == row.solver
    _, info = bfnsolvers.sample(oracle, process, "bfn", nfe=nfe, shape=(4, 5))           # the original sampler
    assert float(info.times[0]) == 0.0 and info.final == "denoise"


def test_default_final_without_a_process_and_for_other_kinds():
    """No process: "drop" (the published last_drop) but for the original sampler and the reference; continuous and
    discretised data keep their row of DEFAULTS at every NFE."""
    from bfnsolvers import ContinuousBFN
    assert default_final("bfn") == default_final("reference") == "denoise" and default_final("bfn-unipc3") == "drop"
    for k in (5, 15, 100):
        assert default_final("bfn-unipc3", ContinuousBFN(1e-3), k) == "drop"
        assert default_solver(ContinuousBFN(1e-3), k) == "bfn-unipc3"
    assert default_t_start(DiscreteBFN(3.0, 7), "sde-bfn-unipc3-t", 50) == pytest.approx(discrete_row(50).eta)
