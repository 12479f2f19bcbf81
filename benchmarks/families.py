"""Defaults on data they were never tuned on: the random Gaussian-mixture family (``bfnsolvers.oracle_families``).

    python benchmarks/families.py                 # runs the missing cells, then writes report.md (~2 min, one core)
    python benchmarks/families.py --report-only   # re-renders report.md from results.jsonl

For the first --members seeds of each half (even: choosing, odd: held out), at each NFE and sample seed:
ours = the default solver/grid (``sample`` with no solver) with start="zero" and with start="prior-mean", and every
published continuous solver on its published grid (uniform in t from eta = 0.01, last step dropped); "published"
below is the best of them per member and NFE (generous to them). Metrics against one exact set (seed 10^6) of the
same size: sliced W2 (256 directions, fixed) and the energy distance (V-statistic); each divided by its noise
floor, the median of the metric over --floor-pairs other exact sets. Results: one JSON line per cell
(results.jsonl, resumable: cells already there are skipped). Also the exact ODE (dopri5) from the default start
time with each start (nfe 0 in results.jsonl; --no-exact skips it): the error the start alone leaves.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from rich.progress import Progress

import bfnsolvers
from bfnsolvers.defaults import default_t_start
from bfnsolvers.denoiser import Denoiser
from bfnsolvers.metrics.oracle_metrics import energy_distance, sliced_wasserstein2
from bfnsolvers.oracle_families import members, mixture_member
from bfnsolvers.sampling import prior_mean

OUT = Path(__file__).resolve().parent / "results" / "families"
PUBLISHED = ("bfn-solver1", "bfn-solver2", "bfn-solver++1", "bfn-solver++2", "bfn-solver++3", "sde-bfn-solver++2")
OURS = ("ours-zero", "ours-prior-mean")
#: The exact ODE (dopri5, rtol = atol = 1e-6) from the default start time with either start: what the start costs.
EXACT = ("dopri5-zero", "dopri5-prior-mean")
REF_SEED = 10 ** 6


def metrics(x: torch.Tensor, ref: torch.Tensor) -> dict:
    return {"sw2": sliced_wasserstein2(x, ref, 256, torch.Generator().manual_seed(0)),
            "energy": energy_distance(x, ref, unbiased=False)}


def run_cell(member, config: str, nfe: int, seed: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    kw = dict(nfe=nfe, shape=(n,) + member.shape, generator=g, dtype=torch.float64)
    if config in EXACT:
        process, t0 = member.process, default_t_start(member.process, "bfn-unipc3")
        mean = None
        if config == "dopri5-prior-mean":
            mean = prior_mean(Denoiser(member.oracle, process), (n,) + member.shape, t0, torch.float64, "cpu")
        z = process.prior_state((n,) + member.shape, t0, g, torch.float64, mean=mean)
        x, _ = bfnsolvers.sample(member.oracle, process, "reference", z_start=z, t_start=t0, final="denoise",
                                 dtype=torch.float64, rtol=1e-6, atol=1e-6)
        return x
    if config in OURS:
        x, info = bfnsolvers.sample(member.oracle, member.process, start=config[len("ours-"):], **kw)
    else:
        x, info = bfnsolvers.sample(member.oracle, member.process, config, schedule="uniform", t_start=0.01,
                                    final="drop", start="zero", **kw)
    assert info.nfe == nfe, (config, info.nfe, nfe)
    return x


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=10, help="members per half (seeds 0..2m-1)")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--floor-pairs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--no-exact", action="store_true", help="skip the dopri5 cells (nfe 0 in results.jsonl)")
    args = ap.parse_args(argv)
    for name in ("members", "samples", "floor_pairs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    done = {(r["seed_member"], r["config"], r["nfe"], r["seed"], r["samples"]) for r in rows if r["kind"] == "cell"}
    floors = {(r["seed_member"], r["samples"]) for r in rows if r["kind"] == "floor"}
    seeds = members("mixture", "all", 2 * args.members)
    if not args.report_only:
        cells = [(m, c, k, s) for m in seeds for c in OURS + PUBLISHED for k in args.nfe for s in args.seeds]
        if not args.no_exact:
            cells += [(m, c, 0, s) for m in seeds for c in EXACT for s in args.seeds]
        cells = [cell for cell in cells if cell + (args.samples,) not in done]
        with Progress() as bar, path.open("a") as f:
            task = bar.add_task("families", total=len(cells) + len(seeds))
            cache = {}
            for m in seeds:
                member = mixture_member(m)
                ref = member.oracle.sample(args.samples, torch.Generator().manual_seed(REF_SEED))
                cache[m] = (member, ref)
                if (m, args.samples) not in floors:
                    vals = [metrics(member.oracle.sample(args.samples, torch.Generator().manual_seed(REF_SEED + 1 + j)), ref)
                            for j in range(args.floor_pairs)]
                    row = {"kind": "floor", "seed_member": m, "samples": args.samples, "pairs": args.floor_pairs,
                           **{k: statistics.median(v[k] for v in vals) for k in vals[0]}, "params": member.params}
                    f.write(json.dumps(row) + "\n"); f.flush(); rows.append(row)
                bar.advance(task)
            for m, c, k, s in cells:
                member, ref = cache[m]
                t0 = time.perf_counter()
                x = run_cell(member, c, k, s, args.samples)
                row = {"kind": "cell", "seed_member": m, "config": c, "nfe": k, "seed": s, "samples": args.samples,
                       **metrics(x, ref), "wall": time.perf_counter() - t0}
                f.write(json.dumps(row) + "\n"); f.flush(); rows.append(row)
                bar.advance(task)
    report(rows, args, " ".join(["python benchmarks/families.py"] + (argv if argv is not None else sys.argv[1:])))


def report(rows, args, command: str) -> None:
    floor = {r["seed_member"]: r for r in rows if r["kind"] == "floor" and r["samples"] == args.samples}
    cells: dict = {}
    for r in rows:
        if r["kind"] == "cell" and r["samples"] == args.samples and r["seed"] in args.seeds:
            cells.setdefault((r["seed_member"], r["config"], r["nfe"]), []).append(r)

    def ratio(m, c, k, metric):
        v = cells.get((m, c, k))
        return None if not v else statistics.mean(x[metric] for x in v) / floor[m][metric]

    def pub(m, k, metric):
        vals = [ratio(m, c, k, metric) for c in PUBLISHED]
        vals = [v for v in vals if v is not None]
        return min(vals) if vals else None

    lines = ["# Defaults on the random mixture family", "", f"Command: `{command}`", "",
             f"Members: the first {args.members} seeds of each half of `mixture_member` (even: choosing, odd: held out); "
             f"{args.samples} samples, seeds {args.seeds}, float64; every number is a ratio to the member's noise floor "
             f"(median of the metric over {args.floor_pairs} pairs of exact sets; 1 = indistinguishable from exact "
             "samples). published = the best of " + ", ".join(f"`{p}`" for p in PUBLISHED) +
             " per member and NFE (uniform grid from t = 0.01, last step dropped). ours = the default "
             "(`bfn-unipc3`, log-SNR grid over 9 half-log-SNR units, last step dropped), start zero / prior-mean.", ""]
    for half in ("reporting", "choosing"):
        ms = [m for m in sorted(floor) if (m % 2 == 1) == (half == "reporting")]
        title = "held out (odd seeds)" if half == "reporting" else "choosing (even seeds)"
        lines += [f"## {title}", ""]
        for metric in ("sw2", "energy"):
            lines += [f"### {metric} / floor", "", "| config | " + " | ".join(f"NFE {k} median | NFE {k} worst" for k in args.nfe) + " |",
                      "|---|" + "---|" * (2 * len(args.nfe))]
            for c in OURS + ("published",):
                out = []
                for k in args.nfe:
                    vals = [pub(m, k, metric) if c == "published" else ratio(m, c, k, metric) for m in ms]
                    vals = [v for v in vals if v is not None]
                    out += [f"{statistics.median(vals):.2f}", f"{max(vals):.2f}"] if vals else ["-", "-"]
                lines.append(f"| {c} | " + " | ".join(out) + " |")
            lines.append("")
            for c in OURS:
                wins = []
                for ko, kp in ((10, 10), (5, 5), (5, 10)):
                    if ko in args.nfe and kp in args.nfe:
                        pairs = [(ratio(m, c, ko, metric), pub(m, kp, metric)) for m in ms]
                        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
                        wins.append(f"NFE {ko} vs published NFE {kp}: {sum(a < b for a, b in pairs)}/{len(pairs)}")
                lines.append(f"- {c} beats published ({metric}): " + "; ".join(wins))
            pm = [(ratio(m, "ours-prior-mean", k, metric), ratio(m, "ours-zero", k, metric)) for m in ms for k in args.nfe]
            pm = [(a, b) for a, b in pm if a is not None and b is not None]
            lines += [f"- prior-mean below zero start ({metric}, members x NFE): {sum(a < b for a, b in pm)}/{len(pm)}; "
                      f"median ratio prior-mean / zero {statistics.median(a / b for a, b in pm):.3f}", ""]
        exact = {c: [ratio(m, c, 0, "sw2") for m in ms] for c in EXACT}
        if all(v is not None for vals in exact.values() for v in vals) and ms:
            lines += ["Exact ODE (dopri5, rtol = atol = 1e-6) from the default start time, sw2 / floor per member "
                      f"(seeds {', '.join(map(str, ms))}):", ""]
            for c, vals in exact.items():
                lines.append(f"- {c}: " + ", ".join(f"{v:.2f}" for v in vals) +
                             f" (median {statistics.median(vals):.2f}, worst {max(vals):.2f})")
            lines.append("")
        lines += ["Per member at NFE 10 (sw2 / floor; D, M, std, sigma_1):", "",
                  "| seed | D | M | std | sigma_1 | floor sw2 | ours-zero | ours-prior-mean | published |", "|---|---|---|---|---|---|---|---|---|"]
        for m in ms:
            p = floor[m]["params"]
            r = [ratio(m, c, 10, "sw2") for c in OURS] + [pub(m, 10, "sw2")]
            lines.append(f"| {m} | {p['dim']} | {p['components']} | {p['std']:.3f} | {p['sigma_1']:.1e} | {floor[m]['sw2']:.4f} | "
                         + " | ".join("-" if v is None else f"{v:.2f}" for v in r) + " |")
        lines.append("")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
