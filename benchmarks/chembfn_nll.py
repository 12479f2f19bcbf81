"""The ChemBFN checkpoint's own NLL (negative ELBO) of each benchmark cell's samples, and of MOSES test.

For a BFN, -ln p(x) <= L_inf(x) + L^r(x) (``bfnsolvers.train.evaluate_nll``): L_inf with ChemBFN's accuracy
schedule beta(t) (the process ``from_chembfn`` returns), Monte Carlo over ``--repeats`` draws of (t, theta)
per sequence; L^r = -ln p_O(x | theta(1)) over as many draws of theta(1). In nats per molecule (the whole
padded sequence of ``--length`` positions, as the network was trained) and per position.

What is scored: the first ``--n`` samples of each cell of ``<out>/results.jsonl`` (report seed). The
``samples/*.txt.gz`` files hold the decoded strings (ChemBFN's decoding: the tokens after the last
``<start>`` up to the first ``<end>``, pads dropped), so each string is re-tokenised with ChemBFN's tokenizer,
``<start>`` s ``<end>`` padded with ``<pad>``: the NLL of the sequence the model would see for that string. Strings
longer than ``--length`` tokens after that are skipped (counted). Where the cell also stored its sampled ids
(``samples/*.tokens.pt``, cells run after the token store was added) the sampled sequences are scored too,
with the same seed. Guided cells (+cK) are scored under the network given label K (no guidance); the others
with the null label. Results: ``<out>/nll.jsonl`` (one line per cell, resumable; key ``ref`` for MOSES test).

Run:
    python benchmarks/chembfn_nll.py --out benchmarks/results/chembfn --n 200 --repeats 4
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import shlex
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


class Labelled(nn.Module):
    """The wrapped ChemBFN network with a fixed class label (through its MLP): (theta, t) -> logits."""

    output_type = "logits"

    def __init__(self, model: nn.Module, label: int):
        super().__init__()
        self.model, self.label = model, label

    def forward(self, theta, t):
        return self.model(theta, t, torch.full((theta.shape[0], 1), self.label, dtype=torch.long))


def retokenise(smiles: list[str], length: int) -> tuple[torch.Tensor, list[int]]:
    """ChemBFN's tokenisation of each string, padded to ``length``; the indices of the strings kept."""
    from bfnsolvers.integrations.chembfn import smiles_to_tokens
    rows, kept = [], []
    for i, s in enumerate(smiles):
        try:
            tok = smiles_to_tokens([s])
        except (ValueError, KeyError, IndexError):
            continue
        if tok.shape[1] <= length:
            rows.append(torch.nn.functional.pad(tok, (0, length - tok.shape[1])))
            kept.append(i)
    return (torch.cat(rows) if rows else torch.zeros((0, length), dtype=torch.long)), kept


def score(model, process, x: torch.Tensor, length: int, args) -> dict:
    """evaluate_nll's means and SEs per molecule and per position, and the per-item NLLs."""
    from bfnsolvers.train import evaluate_nll
    est = evaluate_nll(model, process, x, seed=args.seed, repeats=args.repeats, batch_size=args.batch)
    out = est.summary()
    out.update({f"{k}_per_pos": v for k, v in est.summary(dims=length).items() if not k.endswith("_se")})
    out["nll_per_pos_se"] = out["nll_se"] / length
    return out, est.nll


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", type=Path, default=ROOT / "checkpoints" / "chembfn-moses.pt")
    ap.add_argument("--mlp", type=Path, default=ROOT / "checkpoints" / "chembfn-moses-mlp.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "chembfn")
    ap.add_argument("--n", type=int, default=200, help="samples scored per cell (the first n)")
    ap.add_argument("--n-ref", type=int, default=1000, help="MOSES test SMILES scored (seeded subset)")
    ap.add_argument("--repeats", type=int, default=4, help="draws of (t, theta) and of theta(1) per sequence")
    ap.add_argument("--length", type=int, default=58)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report-seed", type=int, default=0, help="the sampling seed whose cells are scored")
    args = ap.parse_args()
    for name in ("n", "n_ref", "repeats", "length", "batch"):
        if getattr(args, name) < 2 if name in ("n", "n_ref") else getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} is too small")
    torch.set_num_threads(1)
    from bayesianflow_for_chem import MLP, ChemBFN
    from bfnsolvers.integrations.chembfn import from_chembfn
    from bfnsolvers.metrics.molecules import canonical
    from chembfn_bench import moses_smiles, parse_config

    net = ChemBFN.from_checkpoint(args.ckpt).eval()
    mlp = MLP.from_checkpoint(args.mlp).eval() if args.mlp else None
    model, process = from_chembfn(net, mlp)
    path = args.out / "nll.jsonl"
    done = {(r["config"], r["nfe"], r["seed"]) for r in map(json.loads, path.read_text().splitlines())} \
        if path.exists() else set()
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    rows = [json.loads(line) for line in (args.out / "results.jsonl").read_text().splitlines() if line]
    cells = [("ref", 0, args.seed)] + [(r["config"], r["nfe"], r["seed"]) for r in rows
                                        if r["seed"] == args.report_seed]
    for config, nfe, seed in cells:
        if (config, nfe, seed) in done:
            continue
        t0 = time.perf_counter()
        if config == "ref":
            smiles = random.Random(args.seed).sample(moses_smiles("test"), args.n_ref)
            net_ = model
        else:
            stem = args.out / "samples" / f"{config.replace(':', '_')}_nfe{nfe}_s{seed}"
            with gzip.open(f"{stem}.txt.gz", "rt") as f:
                smiles = f.read().split("\n")[:args.n]
            label = parse_config(config)[1].get("label")
            net_ = model if label is None else Labelled(model, label)
        x, kept = retokenise(smiles, args.length)
        rec = {"config": config, "nfe": nfe, "seed": seed, "n": len(kept), "skipped": len(smiles) - len(kept),
               "repeats": args.repeats, "nll_seed": args.seed, "length": args.length,
               "tokens_mean": (x != 0).sum(1).double().mean().item(), "command": command}
        m, per = score(net_, process, x, args.length, args)
        rec.update(m)
        valid = [i for i, c in enumerate(canonical([smiles[i] for i in kept])) if c is not None]
        rec["n_valid"] = len(valid)
        if len(valid) >= 2:
            v = per[valid]
            rec["nll_valid"], rec["nll_valid_se"] = v.mean().item(), (v.std() / len(v) ** 0.5).item()
        tok_path = None if config == "ref" else Path(f"{stem}.tokens.pt")
        if tok_path is not None and tok_path.exists():
            sampled = torch.load(tok_path).long()[:args.n]
            ms, per_s = score(net_, process, sampled, args.length, args)
            rec.update({f"sampled_{k}": v for k, v in ms.items()})
            same = [i for i in range(len(kept)) if torch.equal(sampled[kept[i]], x[i])]
            rec["sampled_equal_retokenised"] = len(same)
            d = per_s[kept] - per
            rec["sampled_minus_retok"], rec["sampled_minus_retok_se"] = d.mean().item(), (d.std() / len(d) ** 0.5).item()
        rec["wall_s"] = time.perf_counter() - t0
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        extra = f" sampled {rec['sampled_nll']:.1f}" if "sampled_nll" in rec else ""
        print(f"{config:32s} NFE {nfe:4d}: NLL {rec['nll']:.1f} ± {rec['nll_se']:.1f} nats/mol (L_inf "
              f"{rec['loss_inf']:.1f}, L^r {rec['recon']:.2f}; n {rec['n']}, skipped {rec['skipped']}){extra} "
              f"({rec['wall_s']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
