"""ChemBFN on MOSES: ChemBFN's own samplers against bfnsolvers' solvers, same checkpoint and seeds.

Every cell (config, NFE, seed) draws ``--n`` SMILES of length ``--length`` in batches of ``--batch``
(batch b seeded with 1000 * seed + b, for ChemBFN through ``torch.manual_seed``, for bfnsolvers
through a ``torch.Generator``: the same stream), scores them and appends one JSON line to
``<out>/results.jsonl``; a cell already there is skipped (resumable). Samples go to
``<out>/samples/<config>_nfe<NFE>_s<seed>.txt.gz`` (decoded strings) and ``.tokens.pt`` (the sampled ids,
uint8). ``--report`` writes ``report.md`` and ``metrics.png`` from the JSONL (and ``chembfn_nll.py``'s
``nll.jsonl``) without sampling.

NFE = network calls per sample: ChemBFN with n steps spends n + 1 (its final call at t = 1), so
``chem:*`` at NFE N runs N - 1 steps (``--chem-steps`` adds cells at ChemBFN's own step counts, e.g.
100 steps = NFE 101, its default). Metrics (``bfnsolvers.metrics.molecules``): validity, uniqueness,
novelty vs the MOSES train SMILES as stored (RDKit-canonical; the report gives the fraction of 5000
train SMILES the installed RDKit leaves unchanged), internal diversity (Morgan r2 1024, distinct
pairs, up to 1000 distinct valid), FCD (fcd_torch's ChemNet) to a seeded subset of MOSES test
(``--fcd-ref``), and the sampling wall time.

Run (the report's command is recorded in it):
    python benchmarks/chembfn_bench.py --ckpt checkpoints/chembfn-moses.pt --out benchmarks/results/chembfn/
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import random
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The default configurations. Any name of the grammar of ``parse_config`` can be passed to ``--configs``.
CONFIGS: list[str] = [
    "chem:BFN", "chem:ODE:0.5", "chem:ODE:1.0", "bfn-mode", "chembfn-ode:0.5",
    "sde-bfn-solver2-s", "sde-bfn-solver2-s+ns0.7", "sde-bfn-solver2-s+ns0.5",
    "bfn-unipc3-t", "bfn-unipc3-t+T0.7", "bfn-unipc3-t+T0.5",
    "sde-bfn-unipc3-t", "sde-bfn-unipc3-t+ns0.7", "sde-bfn-unipc3-t+ns0.5",
    "sde-bfn-unipc3-t+T0.7", "sde-bfn-unipc3-t+T0.5",
    "sde-bfn-solver2-s+ns0.25", "sde-bfn-unipc3-t+ns0.25",
]
#: suffix -> (option, type): +ns = sample(noise_scale=) (SDE noise times ns), +T = sample(temperature=)
#: (logits / T at every call), +S = sample(schedule=) (a named grid), +ts = sample(t_start=), +c = the
#: target class (the label, through the checkpoint's MLP), +w = guidance strength (ChemBFN's
#: guidance_strength; bfnsolvers' guidance with the model's own null label).
SUFFIXES: dict[str, tuple[str, type]] = {"ns": ("noise_scale", float), "T": ("temperature", float),
                                         "S": ("schedule", str), "ts": ("t_start", float),
                                         "c": ("label", int), "w": ("guidance", float)}


def parse_config(name: str) -> tuple[str, dict]:
    """``base[+suffix...]`` -> (kind, options). base: ``chem:BFN`` / ``chem:ODE:<T>`` (ChemBFN's own
    samplers; suffixes c, w only), ``bfn-mode`` (bfnsolvers' ``bfn`` with draw="mode" on ChemBFN's grid),
    ``chembfn-ode:<T>`` (our port of ODE:T on ChemBFN's grid), or any registered bfnsolvers solver."""
    from bfnsolvers.solvers import SOLVERS
    base, *parts = name.split("+")
    if base == "chem:BFN":
        kind, opts = "chem", {"method": "BFN"}
    elif base.startswith("chem:ODE:"):
        kind, opts = "chem", {"method": "ODE", "T": float(base[len("chem:ODE:"):])}
    elif base == "bfn-mode":
        kind, opts = "bfn", {"draw": "mode", "grid": "chembfn"}
    elif base.startswith("chembfn-ode:"):
        kind, opts = "chembfn-ode", {"ode_temperature": float(base[len("chembfn-ode:"):]), "grid": "chembfn"}
    elif base in SOLVERS:
        kind, opts = base, {}
    else:
        raise ValueError(f"config {name!r}: unknown sampler {base!r}")
    for part in parts:
        key = next((k for k in sorted(SUFFIXES, key=len, reverse=True) if part.startswith(k)), None)
        if key is None:
            raise ValueError(f"config {name!r}: unknown suffix +{part} (known: {', '.join(SUFFIXES)})")
        opt, typ = SUFFIXES[key]
        if kind == "chem" and opt not in ("label", "guidance"):
            raise ValueError(f"config {name!r}: ChemBFN's own samplers take only +c / +w")
        opts[opt] = typ(part[len(key):])
    if "guidance" in opts and "label" not in opts:
        raise ValueError(f"config {name!r}: +w needs a target class +c")
    return kind, opts


METRICS = ["validity", "uniqueness", "novelty", "int_div", "fcd", "nll", "wall_s"]


def moses_smiles(split: str) -> list[str]:
    import importlib.util
    spec = importlib.util.find_spec("moses")
    if spec is None:
        raise SystemExit("the molsets package (module `moses`) is needed for the MOSES SMILES")
    path = Path(list(spec.submodule_search_locations)[0]) / "dataset" / "data" / f"{split}.csv.gz"
    with gzip.open(path, "rt") as f:
        lines = f.read().splitlines()
    return [line.split(",")[0] for line in lines[1:]]


def draw(net, model, process, config: str, nfe: int, n: int, batch: int, length: int, seed: int,
         mlp=None) -> tuple[list[str], torch.Tensor]:
    """n SMILES and their sampled token ids (n, length) from one config at one NFE (batches seeded
    1000 * seed + b). NFE counts data predictions: with a label and guidance both ChemBFN and bfnsolvers
    spend two network passes per prediction."""
    from bfnsolvers import sample
    from bfnsolvers.integrations.chembfn import chembfn_grid, tokens_to_smiles
    kind, opts = parse_config(config)
    label, w = opts.pop("label", None), opts.pop("guidance", 0.0)
    if label is not None and mlp is None:
        raise SystemExit(f"{config}: a target class needs the label MLP (--mlp)")
    out: list[str] = []
    toks: list[torch.Tensor] = []
    for b in range(math.ceil(n / batch)):
        size, s = min(batch, n - b * batch), 1000 * seed + b
        c = None if label is None else torch.full((size, 1), label, dtype=torch.long)
        if kind == "chem":
            y = None if c is None else mlp(c)
            torch.manual_seed(s)
            if opts["method"] == "BFN":
                tok, _ = net.sample(size, length, y, sample_step=nfe - 1, guidance_strength=w)
            else:
                tok, _ = net.ode_sample(size, length, y, sample_step=nfe - 1, guidance_strength=w,
                                        temperature=opts["T"])
        else:
            kw = {k: v for k, v in opts.items() if k != "grid"}
            if opts.get("grid") == "chembfn":
                kw.update(schedule=chembfn_grid(nfe - 1), final="denoise")
            else:
                kw.update(nfe=nfe)
            if c is not None:
                kw.update(cond=c, guidance=w)
            tok, _ = sample(model, process, kind, shape=(size, length), readout_as="mode",
                            generator=torch.Generator().manual_seed(s), **kw)
        out += tokens_to_smiles(tok)
        toks.append(tok)
    return out, torch.cat(toks)


def load_done(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    return {(r["config"], r["nfe"], r["seed"]) for r in map(json.loads, path.read_text().splitlines()) if r}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def fcd_reference(out: Path, n_ref: int):
    from bfnsolvers.metrics.molecules import FCDStats
    stats = FCDStats.__new__(FCDStats)
    cache = Path.home() / ".cache" / "bfnsolvers" / f"fcd_ref_moses_test{n_ref}_seed0.pt"
    cache.parent.mkdir(parents=True, exist_ok=True)
    from fcd_torch import FCD
    stats.fcd = FCD(device="cpu", n_jobs=1)
    if cache.exists():
        stats.ref = torch.load(cache, weights_only=False)
    else:
        test = moses_smiles("test")
        stats.ref = stats.fcd.precalc(random.Random(0).sample(test, n_ref))
        torch.save(stats.ref, cache)
    return stats


def run(args) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from bayesianflow_for_chem import MLP, ChemBFN
    from bfnsolvers.integrations.chembfn import from_chembfn
    from bfnsolvers.metrics.molecules import hit_rate, molecule_metrics, qed_classes

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "samples").mkdir(exist_ok=True)
    results = args.out / "results.jsonl"
    done = load_done(results)
    cells = [(c, nfe, s) for nfe in args.nfe for c in args.configs for s in args.seeds]
    cells += [(c, steps + 1, s) for steps in args.chem_steps for c in args.configs if c.startswith("chem:")
              for s in args.seeds]
    todo = [cell for cell in cells if cell not in done]
    if not todo:
        print(f"all {len(cells)} cells are in {results}")
        return
    with open(args.out / "commands.txt", "a") as f:
        f.write(args.command + "\n")
    net = ChemBFN.from_checkpoint(args.ckpt).eval()
    mlp = MLP.from_checkpoint(args.mlp).eval() if args.mlp else None
    thresholds = json.loads(args.labels.read_text())["thresholds"] if args.labels else None
    model, process = from_chembfn(net, mlp)
    ckpt_id = sha256(args.ckpt)
    train_list = moses_smiles("train")
    train = set(train_list)
    check = args.out / "train_canonical_check.json"
    if not check.exists():
        from bfnsolvers.metrics.molecules import canonical
        sub = random.Random(0).sample(train_list, 5000)
        same = sum(c == s for c, s in zip(canonical(sub), sub))
        check.write_text(json.dumps({"n": 5000, "unchanged_by_rdkit": same / 5000}) + "\n")
    del train_list
    stats = fcd_reference(args.out, args.fcd_ref) if args.fcd_ref else None
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("cells", total=len(todo))
        for config, nfe, seed in todo:
            bar.update(task, description=f"{config} NFE {nfe} seed {seed}")
            t0 = time.perf_counter()
            with torch.no_grad():
                smiles, tokens = draw(net, model, process, config, nfe, args.n, args.batch, args.length, seed, mlp)
            wall = time.perf_counter() - t0
            m = molecule_metrics(smiles, train)
            valid = m.pop("valid_smiles")
            if thresholds is not None:
                cls = qed_classes(valid, thresholds)
                m["class_frac"] = [sum(c == k for c in cls) / len(cls) if cls else float("nan")
                                   for k in range(len(thresholds) + 1)]
                label = parse_config(config)[1].get("label")
                if label is not None:
                    m.update(target=label, **hit_rate(valid, thresholds, label))
            if stats is not None:
                m["fcd"] = stats.distance(valid)
            stem = args.out / "samples" / f"{config.replace(':', '_')}_nfe{nfe}_s{seed}"
            with gzip.open(f"{stem}.txt.gz", "wt") as f:
                f.write("\n".join(smiles) + "\n")
            torch.save(tokens.to(torch.uint8), f"{stem}.tokens.pt")  # the sampled ids, for the NLL
            rec = {"config": config, "nfe": nfe, "seed": seed, "length": args.length, "ckpt": str(args.ckpt),
                   "ckpt_sha256": ckpt_id, "wall_s": wall, "threads": args.threads, **m}
            with open(results, "a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.advance(task)
            bar.console.print(f"{config:26s} NFE {nfe:4d} seed {seed}: valid {m['validity']:.3f} unique "
                              f"{m['uniqueness']:.3f} novel {m.get('novelty', float('nan')):.3f} IntDiv "
                              f"{m['int_div']:.3f} FCD {m.get('fcd', float('nan')):.2f} hit "
                              f"{m.get('hit_rate', float('nan')):.3f} ({wall:.0f} s, n {m['n']})")


def _fmt(r: dict, key: str) -> str:
    v = r.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    se = r.get(key + "_se")
    if key == "wall_s":
        return f"{v:.0f}"
    if key == "fcd":
        return f"{v:.2f}"
    if key.startswith("nll") or key.startswith("sampled_nll"):
        return f"{v:.1f} ± {se:.1f}" if se is not None else f"{v:.1f}"
    return f"{v:.3f} ± {se:.3f}" if se is not None else f"{v:.3f}"


def headline(rows: list[dict], nfes: tuple[int, ...] = (10, 20, 50, 100),
             ref: tuple[str, int] = ("chem:ODE:0.5", 101)) -> list[str]:
    """Each unguided bfnsolvers config at each NFE in ``nfes`` (the first is the headline) against ChemBFN's
    default (ODE:0.5, 100 steps = NFE 101), on the report seed's rows: the differences of validity /
    uniqueness / novelty with their combined standard error sqrt(se1^2 + se2^2); a metric is "no worse"
    when the difference is > -1 combined SE."""
    by = {(r["config"], r["nfe"]): r for r in rows}
    if ref not in by:
        return []
    r0 = by[ref]
    out = ["", f"## Headline: NFE {nfes[0]} (and the closest NFE) against ChemBFN's default {ref[0]} at "
               f"{ref[1] - 1} steps (NFE {ref[1]})", "",
           f"Reference: validity {r0['validity']:.4f} ± {r0['validity_se']:.4f}, uniqueness "
           f"{r0['uniqueness']:.3f} ± {r0['uniqueness_se']:.3f}, novelty {r0.get('novelty', float('nan')):.3f} ± "
           f"{r0.get('novelty_se', float('nan')):.3f} (n {r0['n']}, {r0['valid']} valid, seed {r0['seed']}).", "",
           "Differences (config - reference) / combined SE; 'no worse' = difference > -1 combined SE.", "",
           "| config | NFE | n | valid | d validity | d uniqueness | d novelty | no worse on all three |",
           "|---|---|---|---|---|---|---|---|"]
    for nfe in nfes:
        for (config, n_), r in sorted(by.items(), key=lambda kv: -kv[1]["validity"]):
            if n_ != nfe or config.startswith("chem:") or "+c" in config:
                continue
            cells, ok = [], True
            for key in ("validity", "uniqueness", "novelty"):
                a, b = r.get(key), r0.get(key)
                sa, sb = r.get(key + "_se"), r0.get(key + "_se")
                if a is None or b is None or any(map(math.isnan, (a, b, sa, sb))):
                    cells.append("-")
                    ok = False
                    continue
                d, se = a - b, math.hypot(sa, sb)
                ok &= d > -se if se > 0 else d >= 0
                cells.append(f"{d:+.4f} ({d / se:+.1f} SE)" if se > 0 else f"{d:+.4f}")
            out.append(f"| {config} | {nfe} | {r['n']} | {r['valid']} | " + " | ".join(cells)
                       + f" | {'yes' if ok else 'no'} |")
    return out


def tuning(rows: list[dict], nfe: int = 10) -> list[str]:
    """The tuning seed's unguided cells at ``nfe``, best validity first."""
    rs = sorted((r for r in rows if r["nfe"] == nfe and "+c" not in r["config"]), key=lambda r: -r["validity"])
    if not rs:
        return []
    out = ["", f"## Tuning (NFE {nfe}, tuning seed {rs[0]['seed']}; not used in the headline)", "",
           "| config | n | validity | uniqueness | novelty | IntDiv |", "|---|---|---|---|---|---|"]
    out += [f"| {r['config']} | {r['n']} | " + " | ".join(_fmt(r, k) for k in
            ("validity", "uniqueness", "novelty", "int_div")) + " |" for r in rs]
    return out


def guided(rows: list[dict]) -> list[str]:
    """Hit rate (fraction of valid samples in the target QED class) and validity of the guided cells, next
    to the fraction of that class among the valid samples of the same sampler without a label."""
    rs = [r for r in rows if "target" in r]
    if not rs:
        return []
    base = {(r["config"], r["nfe"]): r for r in rows if "+c" not in r["config"]}
    out = ["", "## Guided generation (target QED class; report seed)", "",
           "Hit rate = valid samples whose QED class is the target / valid samples (± binomial SE). "
           "'unlabelled' = the same sampler and NFE without a label (the fraction of its valid samples in that "
           "class), where that cell exists. NFE counts data predictions; with guidance (w > 0 or a label on "
           "ChemBFN's samplers) each costs two network passes (conditional and unconditional), see wall s.", "",
           "| config | target | NFE | n | validity | hit rate | mean QED | unlabelled | wall s |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rs, key=lambda r: (r["target"], r["config"].split("+")[0], r["nfe"], r["config"])):
        plain = base.get((r["config"].split("+c")[0], r["nfe"]))
        ref = f"{plain['class_frac'][r['target']]:.3f}" if plain and "class_frac" in plain else "-"
        out.append(f"| {r['config']} | {r['target']} | {r['nfe']} | {r['n']} | {_fmt(r, 'validity')} | "
                   f"{_fmt(r, 'hit_rate')} | {_fmt(r, 'qed_mean')} | {ref} | {_fmt(r, 'wall_s')} |")
    return out


def load_nll(out: Path) -> dict[tuple, dict]:
    """``chembfn_nll.py``'s records by (config, NFE, seed); ("ref", 0, seed) is MOSES test."""
    path = out / "nll.jsonl"
    if not path.exists():
        return {}
    return {(r["config"], r["nfe"], r["seed"]): r for r in map(json.loads, path.read_text().splitlines()) if r}


def nll_table(rows: list[dict], nll: dict[tuple, dict]) -> list[str]:
    """The negative ELBO of each cell's samples (chembfn_nll.py) next to MOSES test's."""
    ref = next((r for k, r in nll.items() if k[0] == "ref"), None)
    rs = [(r, nll[(r["config"], r["nfe"], r["seed"])]) for r in rows if (r["config"], r["nfe"], r["seed"]) in nll]
    if not rs:
        return []
    first = rs[0][1]
    out = ["", "## The model's own NLL of its samples (negative ELBO, nats)", "",
           f"NLL = L_inf + L^r, the bound -ln p(x) <= L_inf + L^r (`bfnsolvers.train.evaluate_nll`, ChemBFN's beta(t)), per "
           f"molecule = the whole {first['length']}-position padded sequence; the first {first['n'] + first['skipped']} "
           f"samples of each cell, {first['repeats']} draws of (t, theta) and of theta(1) each, ± SE over molecules. "
           "Scored sequences: each decoded string re-tokenised with ChemBFN's tokenizer (`<start>` s `<end>` + pads; "
           "'skipped' = longer than the sequence); 'sampled' = the sampled token ids themselves, for the cells that "
           "stored them. 'valid' = the NLL of the valid ones among the scored (k of them). Guided cells (+cK): "
           "the network given label K, no guidance; others: the null label. Lower = more likely under the model.", ""]
    if ref is not None:
        out += [f"Reference, MOSES test ({ref['n']} SMILES, seeded; {ref['skipped']} longer than the sequence "
                f"skipped): NLL {ref['nll']:.1f} ± {ref['nll_se']:.1f} nats per molecule ({ref['nll_per_pos']:.3f} "
                f"per position; L_inf {ref['loss_inf']:.1f}, L^r {ref['recon']:.2f} ± {ref['recon_se']:.2f}; "
                f"{ref['tokens_mean']:.1f} non-pad tokens on average).", ""]
    out += ["| config | NFE | n (skipped) | NLL / mol | per position | L_inf | L^r | tokens | valid: NLL (k) "
            "| sampled ids: NLL (equal / n) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r, m in rs:
        val = f"{_fmt(m, 'nll_valid')} ({m['n_valid']})" if "nll_valid" in m else f"- ({m['n_valid']})"
        smp = (f"{_fmt(m, 'sampled_nll')} ({m['sampled_equal_retokenised']} / {m['n']})"
               if "sampled_nll" in m else "-")
        out.append(f"| {r['config']} | {r['nfe']} | {m['n']} ({m['skipped']}) | {_fmt(m, 'nll')} | "
                   f"{m['nll_per_pos']:.3f} | {m['loss_inf']:.1f} | {m['recon']:.2f} | {m['tokens_mean']:.1f} | "
                   f"{val} | {smp} |")
    return out


def _curves(ax, rows: list[dict], key: str, colours) -> None:
    configs = list(dict.fromkeys(r["config"] for r in rows))
    for j, c in enumerate(configs):
        rs = sorted((r for r in rows if r["config"] == c and r.get(key) is not None), key=lambda r: r["nfe"])
        if rs:
            style = "--" if c.startswith("chem:") else "-"
            per = (lambda r: r[key] / r["n"]) if key == "wall_s" else (lambda r: r[key])
            ax.errorbar([r["nfe"] for r in rs], [per(r) for r in rs], color=colours[j % len(colours)],
                        yerr=[r.get(key + "_se", 0) for r in rs], fmt=style + "o", ms=3, label=c, capsize=2)
    ax.set_xscale("log"), ax.set_xlabel("NFE")
    ax.set_title("wall s per sample" if key == "wall_s" else key)


def report(args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (args.out / "results.jsonl").read_text().splitlines() if line]
    nll = load_nll(args.out)
    for r in rows:
        m = nll.get((r["config"], r["nfe"], r["seed"]))
        if m is not None:
            r.update(nll=m["nll"], nll_se=m["nll_se"])
    main = [r for r in rows if r["seed"] == args.report_seed]
    colours = plt.get_cmap("tab20").colors
    plain = [r for r in main if "+c" not in r["config"]]
    fig, axes = plt.subplots(2, 4, figsize=(20, 8))
    for ax, key in zip(axes.flat, METRICS):
        _curves(ax, plain, key, colours)
    ref = next((m for k, m in nll.items() if k[0] == "ref"), None)
    if ref is not None:
        ax = axes.flat[METRICS.index("nll")]
        ax.axhline(ref["nll"], color="black", lw=0.8, ls=":", label="MOSES test")
        ax.set_title("NLL (negative ELBO), nats per molecule")
        ax.legend(handles=ax.get_lines()[-1:], fontsize=7)
    for ax in axes.flat[len(METRICS):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "metrics.png", dpi=110)
    plt.close(fig)
    lab = [r for r in main if "target" in r]
    if lab:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, key in zip(axes, ("hit_rate", "validity")):
            _curves(ax, lab, key, colours)
        for t in sorted({r["target"] for r in lab}):
            fr = [r["class_frac"][t] for r in plain if "class_frac" in r and r["valid"] >= 20]
            if fr:
                axes[0].axhline(sum(fr) / len(fr), color="grey", lw=0.8, ls=":",
                                label=f"class {t} among unlabelled valid samples (mean over cells)")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.out / "hitrate.png", dpi=110)
        plt.close(fig)
    order = {c: i for i, c in enumerate(dict.fromkeys(r["config"] for r in rows))}
    lines = ["# ChemBFN on MOSES: ChemBFN's samplers vs bfnsolvers", "",
             "Commands (in order; each resumes the same results.jsonl):", "",
             *[f"    {c}" for c in ((args.out / "commands.txt").read_text().splitlines()
                                    if (args.out / "commands.txt").exists() else [args.command])],
             *[f"    {c}" for c in dict.fromkeys(m["command"] for m in nll.values())], "",
             *([(args.out / "summary.md").read_text().strip(), ""] if (args.out / "summary.md").exists() else []),
             "Columns: validity / uniqueness / novelty ± binomial standard error, internal diversity "
             "(Morgan r2 1024 bits, distinct pairs), FCD (fcd_torch ChemNet) to a seeded MOSES-test subset "
             "(biased upward at small n: compare cells with equal n only), hit rate of the target QED class "
             "(guided cells), the model's NLL of its samples (negative ELBO, nats per molecule; its section below), "
             "sampling wall time (s). "
             "`chem:*` = the package's own `ChemBFN.sample` / `ode_sample` (n steps = NFE - 1); others are "
             "bfnsolvers solvers on the same checkpoint (defaults: uniform grid from t = 0.001, last step "
             "dropped; `bfn-mode` / `chembfn-ode` on ChemBFN's grid). Suffixes: +nsX noise scale, +TX "
             "temperature, +S grid, +cK target class, +wX guidance strength.", "",
             f"Report seed {args.report_seed} (all tables but the tuning one; batch b of a cell is seeded "
             f"1000 * seed + b).", "",
             "| config | NFE | n | validity | uniqueness | novelty | IntDiv | FCD | hit rate | NLL | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(main, key=lambda r: (r["nfe"], order[r["config"]])):
        lines.append(f"| {r['config']} | {r['nfe']} | {r['n']} | " + " | ".join(_fmt(r, k) for k in
                     ["validity", "uniqueness", "novelty", "int_div", "fcd", "hit_rate", "nll", "wall_s"]) + " |")
    ck = {(r["ckpt"], r["ckpt_sha256"]) for r in rows}
    check = args.out / "train_canonical_check.json"
    if check.exists():
        frac = json.loads(check.read_text())["unchanged_by_rdkit"]
        lines += ["", f"Novelty is against the MOSES train SMILES as stored; the installed RDKit leaves {frac:.4f} of "
                      "5000 random train SMILES unchanged by canonicalisation (novelty may be overstated by about 1 - that "
                      "fraction at most)."]
    lines += ["", f"Checkpoint(s): {sorted(ck)}", "", "![metrics](metrics.png)", ""]
    lines += headline(main)
    lines += nll_table(sorted(main, key=lambda r: (r["nfe"], order[r["config"]])), nll)
    lines += guided(main)
    if lab:
        lines += ["", "![hit rate](hitrate.png)"]
    lines += tuning([r for r in rows if r["seed"] == args.tune_seed])
    extra = args.out / "notes.md"
    if extra.exists():
        lines += ["", extra.read_text()]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'report.md'} and metrics.png ({len(rows)} cells)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", type=Path, default=ROOT / "checkpoints" / "chembfn-moses.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "chembfn")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS),
                    help="config names: base[+nsX][+TX][+Sschedule][+tsX][+cK][+wX] (see parse_config)")
    ap.add_argument("--mlp", type=Path, default=None, help="the label MLP (ChemBFN's MLP.from_checkpoint format)")
    ap.add_argument("--labels", type=Path, default=None,
                    help="JSON with the QED class thresholds (train.py's labels.json): adds class fractions "
                         "and, for +cK configs, the hit rate")
    ap.add_argument("--nfe", nargs="*", type=int, default=[5, 10, 20, 50, 100])
    ap.add_argument("--chem-steps", nargs="*", type=int, default=[], help="extra cells for chem:* at these step counts")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--n", type=int, default=2000, help="samples per cell")
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--length", type=int, default=58, help="sequence length L (the training padding length)")
    ap.add_argument("--fcd-ref", type=int, default=10000, help="MOSES test SMILES for FCD's reference (0: no FCD)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-seed", type=int, default=0, help="the seed whose cells the report's tables use")
    ap.add_argument("--tune-seed", type=int, default=100, help="the seed of the tuning cells (reported apart)")
    ap.add_argument("--report", action="store_true", help="only write report.md and metrics.png")
    args = ap.parse_args()
    args.command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    for name in ("n", "batch", "length", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1")
    if any(n < 2 for n in args.nfe):
        raise SystemExit("--nfe values must be >= 2")
    for c in args.configs:
        try:
            parse_config(c)
        except ValueError as err:
            raise SystemExit(f"--configs: {err}") from None
    if args.report:
        report(args)
        return
    if not args.ckpt.is_file():
        raise SystemExit(f"--ckpt: no checkpoint at {args.ckpt}")
    run(args)
    report(args)


if __name__ == "__main__":
    main()
