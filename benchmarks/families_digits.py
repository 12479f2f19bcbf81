"""The continuous start rule on the shipped digits model (the span-9 start was chosen there).

    python benchmarks/families_digits.py     # -> benchmarks/results/families/digits.md (~2 min, one core)

sample()'s default (bfn-unipc3, log-SNR grid, start by NFE: ``CONTINUOUS_START_RULE``) vs the same solver from the
old span-9 start (lambda(1) - 9, zero start), 256 samples, sample seeds 0 and 1, the Frechet digits distance to
the test set (``bfnsolvers.bench.targets``; lower is better; its floor: 256 training images).
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

import bfnsolvers
from bfnsolvers.bench.targets import resolve_target
from bfnsolvers.defaults import DEFAULT_SPAN

OUT = Path(__file__).resolve().parent / "results" / "families" / "digits.md"
NFES = (4, 5, 6, 8, 10, 15, 20, 50)
LAMS = (-1.0, -1.5, -2.0, -2.5, -3.0)


def main(*_: str) -> None:
    torch.set_num_threads(1)
    target = resolve_target("digits-continuous")
    p = target.process
    old = float(p.t_of_lam(p.lam(1.0) - DEFAULT_SPAN))
    lines = ["# The continuous start rule on the digits model", "", "Command: `python benchmarks/families_digits.py`", "",
             "`bfn-unipc3` on the log-SNR grid, last step dropped, 256 samples, mean over sample seeds 0 and 1 of the "
             "Frechet digits distance to the test set (lower is better; floor: 256 training images).", "",
             "| NFE | default (rule) | span 9, zero start | floor |", "|---|---|---|---|"]
    for k in NFES:
        vals = {"rule": [], "span9": []}
        floor = []
        for s in (0, 1):
            for name, kw in (("rule", {}), ("span9", {"t_start": old, "start": "zero"})):
                x, _ = bfnsolvers.sample(target.model, p, "bfn-unipc3", k, shape=(256, 8, 8, 1),
                                         generator=torch.Generator().manual_seed(s), **kw)
                m, f, *_ = target.evaluate(x, s)
                vals[name].append(m["fd"])
                floor.append(f["fd"])
        lines.append(f"| {k} | {statistics.mean(vals['rule']):.1f} | {statistics.mean(vals['span9']):.1f} | "
                     f"{statistics.mean(floor):.1f} |")
        print(lines[-1], flush=True)
    lines += ["", "From lambda(t_start) fixed, zero start (the rule's candidates at few calls):", "",
              "| NFE | " + " | ".join(f"lambda {v:g}" for v in LAMS) + " |", "|---|" + "---|" * len(LAMS)]
    for k in (4, 5):
        row = []
        for lam in LAMS:
            t0 = float(p.t_of_lam(torch.tensor(lam, dtype=torch.float64)))
            row.append(statistics.mean(fd(target, k, s, t_start=t0, start="zero") for s in (0, 1)))
        lines.append(f"| {k} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
        print(lines[-1], flush=True)
    lines += ["", "The default with lower order at the end on / off:", "", "| NFE | on | off |", "|---|---|---|"]
    for k in (4, 5):
        on, off = (statistics.mean(fd(target, k, s, lower_order_final=v) for s in (0, 1)) for v in (True, False))
        lines.append(f"| {k} | {on:.1f} | {off:.1f} |")
        print(lines[-1], flush=True)
    OUT.write_text("\n".join(lines) + "\n")


def fd(target, nfe: int, seed: int, **kw) -> float:
    x, _ = bfnsolvers.sample(target.model, target.process, "bfn-unipc3", nfe, shape=(256, 8, 8, 1),
                             generator=torch.Generator().manual_seed(seed), **kw)
    return target.evaluate(x, seed)[0]["fd"]


if __name__ == "__main__":
    main(*sys.argv[1:])
