"""Today's defaults on the shipped checkpoints: ``sample()`` with only nfe vs the best published solver.

    python benchmarks/shipped_defaults.py      # -> benchmarks/results/shipped-defaults.md (one core)

For each shipped checkpoint and NFE: ours = ``sample(model, process, nfe=k)`` (every default from
``bfnsolvers.defaults``, chosen on the oracle families' choosing halves); published = the published solvers of
``benchmarks.beyond.models.MODELS`` on their published grid (uniform in t from eta, last step dropped), the best
of them per NFE (generous to them). 256 samples, the mean over sample seeds 0 and 1 of the checkpoint's metric
(``bfnsolvers.bench.targets``): digits FD (lower is better) or |char 7-gram NLL - that of real text| (lower is
better). The rows are printed as they finish.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import torch

import bfnsolvers
from bfnsolvers.bench.targets import resolve_target

if __package__ in (None, ""):       # run as a script: the sibling package by path
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.beyond.models import MODELS  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "shipped-defaults.md"
CHECKPOINTS = {"digits-continuous": "digits-continuous", "digits-discretised": "digits-continuous",
               "text-discrete": "text-discrete"}   # checkpoint -> its row of MODELS (published solvers, eta, metric)
NFES = (4, 5, 6, 8, 10, 15, 20, 50)
SEEDS = (0, 1)
SAMPLES = 256


def score(target, metric: str, better: str, **kw) -> float:
    """The mean over SEEDS of the metric (|value - floor| where the real data's value is the target)."""
    vals = []
    for s in SEEDS:
        x, _ = bfnsolvers.sample(target.model, target.process, shape=(SAMPLES,) + tuple(target.shape),
                                 generator=torch.Generator().manual_seed(s), **kw)
        m, floor, *_ = target.evaluate(x, s)
        vals.append(m[metric] if better == "lower" else abs(m[metric] - floor[metric]))
    return statistics.mean(vals)


def main() -> None:
    torch.set_num_threads(1)
    lines = ["# Today's defaults on the shipped checkpoints", "", "Command: `python benchmarks/shipped_defaults.py`",
             "", __doc__.split("\n\n")[2].replace("\n", " "), ""]
    for name, row in CHECKPOINTS.items():
        published, eta, _, metric, label, better = MODELS[row]
        target = resolve_target(name)
        lines += [f"## {name}: {label}", "", "| NFE | ours (default) | best published | ours / published |",
                  "|---:|---:|---|---:|"]
        wins = 0
        for k in NFES:
            ours = score(target, metric, better, nfe=k)
            pub = {s: score(target, metric, better, solver=s, nfe=k, schedule="uniform", t_start=eta, final="drop")
                   for s in published}
            best = min(pub, key=pub.get)
            wins += ours < pub[best]
            lines.append(f"| {k} | {ours:.3f} | {pub[best]:.3f} ({best}) | {ours / pub[best]:.2f} |")
            print(name, lines[-1], flush=True)
        lines += ["", f"Ours below the best published at {wins}/{len(NFES)} NFEs.", ""]
        OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
