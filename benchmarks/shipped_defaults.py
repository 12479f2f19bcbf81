"""Today's defaults on the shipped checkpoints: ``sample()`` with only nfe vs the best published solver.

    python benchmarks/shipped_defaults.py      # -> benchmarks/results/shipped-defaults.md (one core)
    python benchmarks/shipped_defaults.py --checkpoints text-discrete --nfe 15 20 50   # rerun these rows only

For each shipped checkpoint and NFE: ours = ``sample(model, process, nfe=k)`` (every default from
``bfnsolvers.defaults``, chosen on the oracle families' choosing halves); published = the published solvers of
``benchmarks.beyond.models.MODELS`` on their published grid (uniform in t from eta, last step dropped), the best
of them per NFE (generous to them). 256 samples, the mean over sample seeds 0 and 1 of the checkpoint's metric
(``bfnsolvers.bench.targets``): digits FD (lower is better) or |char 7-gram NLL - that of real text| (lower is
better). The rows are printed as they finish.
"""
from __future__ import annotations

import argparse
import re
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


def _old_rows(text: str) -> dict[tuple[str, int], tuple[str, float, float]]:
    """(checkpoint, NFE) -> (table line, ours, best published) of a written file (rows kept when not rerun)."""
    out, name = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            name = line[3:].split(":")[0]
        m = re.match(r"\| (\d+) \| ([\d.]+) \| ([\d.]+) ", line)
        if m and name:
            out[(name, int(m.group(1)))] = (line, float(m.group(2)), float(m.group(3)))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", nargs="+", choices=list(CHECKPOINTS), default=None,
                    help="rerun only these checkpoints (the others' rows are kept from the file)")
    ap.add_argument("--nfe", type=int, nargs="+", default=None, help="rerun only these NFEs (the rest kept)")
    args = ap.parse_args([] if argv is None else argv)
    torch.set_num_threads(1)
    old = _old_rows(OUT.read_text()) if OUT.exists() and (args.checkpoints or args.nfe) else {}
    command = " ".join(["python benchmarks/shipped_defaults.py"] + ([] if argv is None else argv))
    lines = ["# Today's defaults on the shipped checkpoints", "", f"Command: `{command}`"
             + (" (rows not rerun kept from the previous run of `python benchmarks/shipped_defaults.py`)" if old else ""),
             "", __doc__.split("\n\n")[2].replace("\n", " "), ""]
    for name, row in CHECKPOINTS.items():
        published, eta, _, metric, label, better = MODELS[row]
        target = None
        lines += [f"## {name}: {label}", "", "| NFE | ours (default) | best published | ours / published |",
                  "|---:|---:|---|---:|"]
        wins = 0
        for k in NFES:
            keep = old.get((name, k)) if (args.checkpoints and name not in args.checkpoints) or \
                (args.nfe and k not in args.nfe) else None
            if keep is not None:
                lines.append(keep[0])
                wins += keep[1] < keep[2]
                continue
            target = target or resolve_target(name)
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
    import sys
    main(sys.argv[1:])
