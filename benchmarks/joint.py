"""Joint BFN (coordinates + atom types) on the exact molecule-mixture oracle: NFE vs quality, grid rules, start time.

    python benchmarks/joint.py           # writes benchmarks/results/joint/{results.jsonl,report.md} (~10 min, one core)
    python benchmarks/joint.py report    # re-renders report.md from results.jsonl

Oracle: ``bfnsolvers.joint.joint_oracle_problem()`` (4 molecules, 5 nodes, K = 5, sigma = 0.1; ContinuousBFN(1e-3)
for zero-CoM coordinates, DiscreteBFN(3, 5) for types). Samples: 4000 per run, seeds 0 and 1 (values are means
over the seeds), float64. Metrics against one exact set of 4000 (seed 1000): sliced W2 of the coordinates
(headline), total variation of the molecule frequencies (each sample assigned to the nearest template with
exactly its types; invalid = no molecule has its types), |jitter ratio - 1| (mean ||x - X_m||^2 / ((n - 1) D
sigma^2), 1 for exact samples). Noise floors: the same metrics of 8 other exact sets (mean ± std).
Grid rules: also the noise-free trajectory error max |z(1) - z_dopri5(1)| from 256 common start states.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from bfnsolvers.joint import assign_to_molecules, assignment_chi2, joint_oracle_problem, sample_joint
from bfnsolvers.joint.geometry import node_noise
from bfnsolvers.joint.oracle import coordinate_sliced_w2, jitter_ratio

OUT = Path(__file__).resolve().parent / "results" / "joint"
B, SEEDS = 4000, (0, 1)
COMBOS = {
    "original (bfn)": {"pos": "bfn", "types": "bfn"},
    "published ODE (bfn-solver++2 + bfn-solver2-s)": {"pos": "bfn-solver++2", "types": "bfn-solver2-s"},
    "published SDE (sde-bfn-solver++2 + sde-bfn-solver2-s)": {"pos": "sde-bfn-solver++2", "types": "sde-bfn-solver2-s"},
    "ours ODE (bfn-unipc3 + bfn-unipc3-t)": {"pos": "bfn-unipc3", "types": "bfn-unipc3-t"},
    "ours SDE types (bfn-unipc3 + sde-bfn-unipc3-t)": {"pos": "bfn-unipc3", "types": "sde-bfn-unipc3-t"},
    "ours SDE (sde-bfn-solver++2 + sde-bfn-unipc3-t)": {"pos": "sde-bfn-solver++2", "types": "sde-bfn-unipc3-t"},
}
NFE_ORIGINAL = (10, 20, 50, 100, 200, 500, 1000)
NFE_FAST = (5, 6, 8, 10, 15, 20, 30, 50, 100, 200)


def metrics(oracle, ref, pos, types) -> dict:
    a = assign_to_molecules(oracle, pos, types)
    chi = assignment_chi2(a, oracle.weights)
    return {"sw2": coordinate_sliced_w2(pos, ref, generator=torch.Generator().manual_seed(7)), "tv": chi["tv"],
            "jitter": abs(jitter_ratio(oracle, pos, a) - 1), "invalid": chi["invalid"], "chi2_p": chi["p"]}


def mean_over_seeds(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def run(oracle, joint, ref, combo, nfe, **kw) -> dict:
    rows, start = [], time.perf_counter()
    for seed in SEEDS:
        x, info = sample_joint(oracle, joint, combo, nfe=nfe, shapes={"pos": (B, 5, 3), "types": (B, 5)},
                               generator=torch.Generator().manual_seed(seed), **kw)
        assert info.nfe == nfe, (info.nfe, nfe)
        rows.append(metrics(oracle, ref, x["pos"], x["types"]))
    return {**mean_over_seeds(rows), "seconds": time.perf_counter() - start}


def trajectory_error(oracle, joint, combo, nfe, schedule, t_start) -> dict:
    shapes = {"pos": (256, 5, 3), "types": (256, 5)}
    g = torch.Generator().manual_seed(123)
    z0 = {n: float(joint[n].s(t_start)) * node_noise(joint.state_shape(n, shapes[n]), g, torch.float64, "cpu", None,
                                                     n in joint.zero_com) for n in joint}
    _, ref = sample_joint(oracle, joint, "reference", z_start=z0, t_start=t_start, final="state",
                          solver_options={"pos": {"rtol": 1e-10, "atol": 1e-10}})
    _, info = sample_joint(oracle, joint, combo, nfe=nfe, schedule=schedule, z_start=z0, t_start=t_start, final="state")
    a1 = float(joint["pos"].a(1.0))
    return {"traj_pos": float((info.states["pos"] - ref.states["pos"]).abs().max()) / a1,
            "traj_types": float((info.states["types"].argmax(-1) != ref.states["types"].argmax(-1)).double().mean())}


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    oracle, joint = joint_oracle_problem()
    ref = oracle.sample(B, torch.Generator().manual_seed(1000))[0]
    records, started = [], time.perf_counter()

    def emit(**rec):
        records.append(rec)
        print(json.dumps(rec), flush=True)

    floors = [metrics(oracle, ref, *oracle.sample(B, torch.Generator().manual_seed(2000 + i))[:2]) for i in range(8)]
    floor = {k: (float(np.mean([f[k] for f in floors])), float(np.std([f[k] for f in floors]))) for k in ("sw2", "tv", "jitter")}
    emit(section="floor", **{k: v[0] for k, v in floor.items()}, **{k + "_std": v[1] for k, v in floor.items()})
    for name, combo in COMBOS.items():
        for nfe in (NFE_ORIGINAL if combo["pos"] == "bfn" else NFE_FAST):
            emit(section="nfe", combo=name, nfe=nfe, **run(oracle, joint, ref, combo, nfe))
    # grid rules (ODE combos): distribution metrics and noise-free trajectory error vs dopri5
    for name in ("ours ODE (bfn-unipc3 + bfn-unipc3-t)", "published ODE (bfn-solver++2 + bfn-solver2-s)"):
        for rule in ("logsnr-mean", "uniform", "logsnr-pos", "logsnr-types"):
            for nfe in (5, 10, 20):
                t0 = 1e-3
                emit(section="grid", combo=name, rule=rule, nfe=nfe, **run(oracle, joint, ref, COMBOS[name], nfe, schedule=rule),
                     **trajectory_error(oracle, joint, COMBOS[name], nfe, rule, t0))
    # start time and start mean (the single-modality defaults give t_start = 0.001 here)
    for t_start in (1e-3, 1e-4, 1e-5):
        for start in ("prior-mean", "zero-mean"):
            for name in ("ours ODE (bfn-unipc3 + bfn-unipc3-t)", "ours SDE types (bfn-unipc3 + sde-bfn-unipc3-t)"):
                for nfe in (10, 20):
                    emit(section="t_start", combo=name, t_start=t_start, start=start, nfe=nfe,
                         **run(oracle, joint, ref, COMBOS[name], nfe, t_start=t_start, start=start))
        emit(section="t_start", combo="reference (dopri5)", t_start=t_start, start="zero-mean", nfe=0,
             **{k: v for k, v in reference_run(oracle, joint, ref, t_start).items()})
    emit(section="total", seconds=time.perf_counter() - started)
    (OUT / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (OUT / "report.md").write_text(report(records))


def reference_run(oracle, joint, ref, t_start) -> dict:
    rows = []
    for seed in SEEDS:
        x, info = sample_joint(oracle, joint, "reference", shapes={"pos": (B, 5, 3), "types": (B, 5)}, t_start=t_start,
                               generator=torch.Generator().manual_seed(seed))
        rows.append({**metrics(oracle, ref, x["pos"], x["types"]), "ref_nfe": info.nfe})
    return mean_over_seeds(rows)


def report(records: list[dict]) -> str:
    floor = next(r for r in records if r["section"] == "floor")
    nfe_rows = [r for r in records if r["section"] == "nfe"]
    orig = {r["nfe"]: r for r in nfe_rows if r["combo"].startswith("original")}
    target = orig[1000]["sw2"]
    lines = ["# Joint BFN on the exact molecule-mixture oracle", "",
             "Made by `python benchmarks/joint.py` (see its docstring: 4000 samples x seeds 0, 1, float64; coordinates",
             "zero-CoM ContinuousBFN(1e-3), types DiscreteBFN(3, 5); default grid rule `logsnr-mean` from t_start = 0.001,",
             "prior-mean start (one of the NFE), last step dropped; the original sampler on its uniform grid from t = 0 with its final call at t = 1).", "",
             f"Noise floors (8 exact sets): coordinate SW2 {floor['sw2']:.4f} ± {floor['sw2_std']:.4f}, molecule-frequency TV "
             f"{floor['tv']:.4f} ± {floor['tv_std']:.4f}, |jitter ratio - 1| {floor['jitter']:.4f} ± {floor['jitter_std']:.4f}.", "",
             "## NFE vs quality (coordinate sliced W2; TV / |jitter - 1| in the second table)", ""]
    combos = list(dict.fromkeys(r["combo"] for r in nfe_rows))
    nfes = sorted({r["nfe"] for r in nfe_rows})
    table = {(r["combo"], r["nfe"]): r for r in nfe_rows}
    lines.append("| NFE | " + " | ".join(combos) + " |")
    lines.append("|---:|" + "---:|" * len(combos))
    for n in nfes:
        lines.append(f"| {n} | " + " | ".join(f"{table[(c, n)]['sw2']:.4f}" if (c, n) in table else "" for c in combos) + " |")
    lines += ["", "| NFE | " + " | ".join(combos) + " |", "|---:|" + "---:|" * len(combos)]
    for n in nfes:
        lines.append(f"| {n} | " + " | ".join(f"{table[(c, n)]['tv']:.3f} / {table[(c, n)]['jitter']:.3f}"
                                              if (c, n) in table else "" for c in combos) + " |")
    loose = target + floor["sw2_std"]
    lines += ["", f"## Speed-up at the original sampler's NFE-1000 quality (coordinate SW2 {target:.4f}; the floor is "
              f"{floor['sw2']:.4f} ± {floor['sw2_std']:.4f}, so the target itself is uncertain by about one floor std)", "",
              f"| solvers | smallest NFE with SW2 <= {target:.4f} (speed-up) | smallest NFE with SW2 <= {loose:.4f} "
              f"(+1 floor std; speed-up) | TV / abs(jitter - 1) at that +1-std NFE |", "|---|---:|---:|---|"]
    for c in combos:
        if c.startswith("original"):
            continue
        cells = []
        for bound in (target, loose):
            hit = [n for n in nfes if (c, n) in table and table[(c, n)]["sw2"] <= bound]
            cells.append(f"{hit[0]} ({1000 / hit[0]:.0f}x)" if hit else f"> {max(n for n in nfes if (c, n) in table)}")
            first = hit[0] if hit else None
        there = f"{table[(c, first)]['tv']:.3f} / {table[(c, first)]['jitter']:.3f}" if first else ""
        lines.append(f"| {c} | {cells[0]} | {cells[1]} | {there} |")
    grid = [r for r in records if r["section"] == "grid"]
    # all three metrics at least as good as the original sampler's at NFE 1000 plus one floor std
    bounds = {k: orig[1000][k] + floor[k + "_std"] for k in ("sw2", "tv", "jitter")}
    lines += ["", "All three metrics within the original sampler's NFE-1000 values + 1 floor std (SW2 <= "
              f"{bounds['sw2']:.4f}, TV <= {bounds['tv']:.4f}, abs(jitter - 1) <= {bounds['jitter']:.4f}):", "",
              "| solvers | smallest NFE | speed-up |", "|---|---:|---:|"]
    for c in combos:
        if c.startswith("original"):
            continue
        hit = [n for n in nfes if (c, n) in table and all(table[(c, n)][k] <= bounds[k] for k in bounds)]
        lines.append(f"| {c} | {hit[0] if hit else '> ' + str(max(n for n in nfes if (c, n) in table))} | "
                     f"{f'{1000 / hit[0]:.0f}x' if hit else '-'} |")
    lines += ["", "## Grid rule (ODE solvers; t_start = 0.001, prior-mean start)", "",
              "Distribution metrics (SW2 / TV) and the noise-free trajectory error from 256 common zero-mean starts vs the",
              "joint dopri5: coordinates max |z(1) - z_ref(1)| / a(1) (coordinate units), types the fraction of nodes whose",
              "argmax y(1) differs.", "",
              "| solvers | rule | NFE 5 | NFE 10 | NFE 20 |", "|---|---|---|---|---|"]
    for c in dict.fromkeys(r["combo"] for r in grid):
        for rule in dict.fromkeys(r["rule"] for r in grid):
            cells = []
            for n in (5, 10, 20):
                r = next(x for x in grid if x["combo"] == c and x["rule"] == rule and x["nfe"] == n)
                cells.append(f"{r['sw2']:.4f} / {r['tv']:.3f} / traj {r['traj_pos']:.2g}, {r['traj_types']:.3f}")
            lines.append(f"| {c} | {rule} | " + " | ".join(cells) + " |")
    ts = [r for r in records if r["section"] == "t_start"]
    lines += ["", "## Start time and start mean (prior-mean: one of the NFE is the call at t = 0 for E[x0])", "",
              "| solvers | t_start | start | NFE | SW2 | TV | abs(jitter - 1) |", "|---|---:|---|---:|---:|---:|---:|"]
    for r in ts:
        lines.append(f"| {r['combo']} | {r['t_start']:g} | {r['start']} | {r['nfe'] or round(r.get('ref_nfe', 0))} | "
                     f"{r['sw2']:.4f} | {r['tv']:.3f} | {r['jitter']:.3f} |")
    total = next(r for r in records if r["section"] == "total")
    lines += ["", f"Total run time {total['seconds'] / 60:.1f} min (one thread)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Joint BFN benchmark on the molecule-mixture oracle "
                                     f"(writes {OUT.relative_to(OUT.parents[2])}/results.jsonl and report.md)")
    parser.add_argument("command", nargs="?", choices=["run", "report"], default="run",
                        help="run: measure everything (~10 min on one thread); report: re-render report.md from results.jsonl")
    if parser.parse_args().command == "report":
        recs = [json.loads(line) for line in (OUT / "results.jsonl").read_text().splitlines()]
        (OUT / "report.md").write_text(report(recs))
    else:
        main()
