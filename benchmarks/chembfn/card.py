"""Export the trained ChemBFN and write its model card.

Reads the training run (``--run``, default ``benchmarks/chembfn/run``: its
``state.pt`` and ``log.csv`` from ``train.py``) and writes

* ``checkpoints/chembfn-moses.pt`` -- ChemBFN's own format
  ``{"nn": state_dict, "hparam": hparam}`` (``ChemBFN.from_checkpoint``);
* ``checkpoints/chembfn-moses.safetensors`` -- the same state dict, hparam in
  the metadata;
* with a label-conditioned run (``train.py --label qed3``): ``checkpoints/chembfn-moses-mlp.pt`` /
  ``-mlp.safetensors`` (the label encoder, ChemBFN's ``MLP`` format) and ``-labels.json`` (the QED
  class thresholds);
* ``checkpoints/chembfn-moses-loss.csv`` and ``-loss.png`` -- the training log;
* ``checkpoints/chembfn-moses-samples.txt`` -- the generated SMILES (BFN sampler);
* ``checkpoints/chembfn-moses.md`` -- the model card, with validity,
  uniqueness and novelty of ChemBFN's own sampler (``tool.sample``, default
  method "BFN", default 100 steps) on ``--n`` samples.

Metrics: valid = RDKit ``Chem.MolFromSmiles`` is not None and the string is
non-empty; uniqueness = distinct canonical SMILES / valid; novelty = distinct
canonical valid SMILES not among the MOSES train SMILES as stored (which are
RDKit-canonical; the card reports the fraction of 5000 random train SMILES that
the installed RDKit leaves unchanged, so the reader can bound the error) /
distinct canonical valid.

Run:  python benchmarks/chembfn/card.py
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train import MAX_LEN, read_smiles  # noqa: E402

OUT = Path("checkpoints")


def train_set(n_check: int = 5000, seed: int = 0) -> tuple[set[str], float]:
    """MOSES train SMILES as stored (they are RDKit-canonical), and the fraction
    of a random subsample that RDKit's current canonicalisation leaves unchanged."""
    import random

    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    smiles = read_smiles("train")
    sub = random.Random(seed).sample(smiles, n_check)
    same = sum(Chem.MolToSmiles(Chem.MolFromSmiles(s)) == s for s in sub)
    return set(smiles), same / n_check


def metrics(samples: list[str], train: set[str]) -> dict:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    canon = []
    for s in samples:
        m = Chem.MolFromSmiles(s) if s else None
        if m is not None:
            canon.append(Chem.MolToSmiles(m))
    uniq = set(canon)
    return {
        "n": len(samples),
        "valid": len(canon),
        "unique": len(uniq),
        "novel": len(uniq - train),
        "validity": len(canon) / len(samples),
        "uniqueness": len(uniq) / max(1, len(canon)),
        "novelty": len(uniq - train) / max(1, len(uniq)),
    }


def loss_table(rows: list[dict], parts: int = 10) -> list[tuple]:
    """Mean logged loss over each tenth of training, and the value at its end."""
    last = rows[-1]["step"]
    out, lo = [], 0
    for j in range(1, parts + 1):
        hi = round(last * j / parts)
        win = [r for r in rows if lo < r["step"] <= hi]
        if win:
            out.append((hi, win[-1]["wall_s"], sum(r["loss"] for r in win) / len(win), win[-1]["loss"]))
        lo = hi
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=Path("benchmarks/chembfn/run"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra", nargs="*", default=["ODE:0.5"],
                    help="further tool.sample methods to report (not saved as samples)")
    ap.add_argument("--n-extra", type=int, default=500, help="samples for each --extra method")
    ap.add_argument("--label-from-step", type=int, default=None,
                    help="the step at which label-conditioned training started (train.py --init-from)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from safetensors.torch import save_file
    from bayesianflow_for_chem import ChemBFN
    from bayesianflow_for_chem.tool import sample

    state = torch.load(args.run / "state.pt", "cpu", weights_only=True)
    step, wall = int(state["step"]), float(state["wall"])
    OUT.mkdir(exist_ok=True)
    torch.save({"nn": state["nn"], "hparam": state["hparam"]}, OUT / "chembfn-moses.pt")
    sd = {k: v.contiguous() for k, v in state["nn"].items()}
    save_file(sd, OUT / "chembfn-moses.safetensors",
              metadata={"hparam": json.dumps(state["hparam"]), "step": str(step)})
    model = ChemBFN.from_checkpoint(OUT / "chembfn-moses.pt")
    n_param = sum(p.numel() for p in model.parameters())
    labels = None
    if "mlp" in state:
        from bayesianflow_for_chem import MLP
        labels = json.loads((args.run / "labels.json").read_text())
        torch.save(state["mlp"], OUT / "chembfn-moses-mlp.pt")
        save_file({k: v.contiguous() for k, v in state["mlp"]["nn"].items()}, OUT / "chembfn-moses-mlp.safetensors",
                  metadata={"hparam": json.dumps(state["mlp"]["hparam"]), "labels": json.dumps(labels)})
        (OUT / "chembfn-moses-labels.json").write_text(json.dumps(labels, indent=1) + "\n")
        mlp = MLP.from_checkpoint(OUT / "chembfn-moses-mlp.pt")
        n_mlp = sum(p.numel() for p in mlp.parameters())

    with open(args.run / "log.csv") as f:
        rows = [{"step": int(r["step"]), "loss": float(r["loss"]), "lr": float(r["lr"]),
                 "wall_s": float(r["wall_s"])} for r in csv.DictReader(f)]
    rows = [r for r in rows if r["step"] <= step]
    shutil.copy(args.run / "log.csv", OUT / "chembfn-moses-loss.csv")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["step"] for r in rows]
    ys = [r["loss"] for r in rows]
    w = 20
    ma = [sum(ys[max(0, i - w + 1):i + 1]) / len(ys[max(0, i - w + 1):i + 1]) for i in range(len(ys))]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, ys, lw=0.5, alpha=0.4, label="mean of 10 steps")
    ax.plot(xs, ma, lw=1.5, label=f"moving average ({w * 10} steps)")
    if args.label_from_step is not None:
        ax.axvline(args.label_from_step, color="grey", ls=":", lw=1, label="labels (QED class) from here")
    ax.set_xlabel("step")
    ax.set_ylabel("ChemBFN cts_loss")
    ax.set_yscale("log")
    ax.set_title("ChemBFN on MOSES train (one CPU thread)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "chembfn-moses-loss.png", dpi=120)

    train, same = train_set()
    results = {}

    def write_card() -> None:
        hp = state["hparam"]
        table = loss_table(rows)
        lines = [
            "# ChemBFN on MOSES (small, CPU-trained)",
            "",
            "A small [ChemBFN](https://pypi.org/project/bayesianflow-for-chem/) "
            "(`bayesianflow-for-chem` 3.0.4) trained on MOSES train SMILES"
            + (", label-conditioned on RDKit QED classes in its second phase, "
               if labels else " unconditionally, ")
            + "for agreement and speed tests of BFN samplers on a real ChemBFN network. "
            "It is far smaller and shorter-trained than the published ChemBFN models; "
            "its sample quality is not comparable to theirs.",
            "",
            "Files: `chembfn-moses.pt` (ChemBFN's own format `{\"nn\": state_dict, \"hparam\": hparam}`, "
            "load with `bayesianflow_for_chem.ChemBFN.from_checkpoint`), `chembfn-moses.safetensors` "
            "(same state dict; hparam in the metadata), `chembfn-moses-loss.csv` / `-loss.png` "
            "(training log), `chembfn-moses-samples.txt` (the BFN-sampler SMILES below)"
            + ("; `chembfn-moses-mlp.pt` / `-mlp.safetensors` (the label encoder, "
               "`bayesianflow_for_chem.MLP.from_checkpoint`; hparam and thresholds in the safetensors metadata) "
               "and `chembfn-moses-labels.json` (the QED class thresholds)." if labels else "."),
            "",
            "## Model",
            "",
            f"- `ChemBFN(num_vocab={hp['num_vocab']}, channel={hp['channel']}, num_layer={hp['num_layer']}, "
            f"num_head={hp['num_head']}, dropout={hp['dropout']})`: {n_param:,} parameters "
            f"({(OUT / 'chembfn-moses.pt').stat().st_size / 1e6:.1f} MB as float32).",
            f"- Tokenizer: ChemBFN's own SMILES tokenizer (`bayesianflow_for_chem.data.smiles2token`, "
            f"default vocabulary, K = {hp['num_vocab']}: `<pad>`=0, `<start>`=1, `<end>`=2), "
            f"padded with ChemBFN's `collate` to the fixed length {MAX_LEN} (`MAX_PADDING_LENGTH`); "
            "sample with `sequence_size = 58`.",
            f"- Accuracy schedule: ChemBFN's built-in one, beta(1) = 20.4054 / K = {20.4054 / hp['num_vocab']:.6f}.",
        ]
        if labels:
            th = labels["thresholds"]
            lines += [
                f"- Label: the QED class of the molecule, 0 (QED < {th[0]:.4f}), 1 ({th[0]:.4f} <= QED < "
                f"{th[1]:.4f}), 2 (QED >= {th[1]:.4f}); the thresholds are the tertiles of RDKit QED "
                f"(`rdkit.Chem.QED.qed`) on {labels['subset_n']:,} MOSES train SMILES "
                f"(`{labels['subset_rule']}`, subset_seed {labels['subset_seed']}; their mean QED "
                f"{labels['qed_mean']:.4f}). Label encoder: ChemBFN's `MLP([3, {mlp.hparam['size'][1]}, "
                f"{hp['channel']}], class_input=True)` ({n_mlp:,} parameters), its output added to the time "
                "embedding. Sample class k with `y = mlp(torch.full((n, 1), k))` and `guidance_strength=w` "
                "(ChemBFN), or `cond=torch.full((n, 1), k), guidance=w` with `load_chembfn(..., mlp=...)` "
                "(bfnsolvers).",
            ]
        lines += [
            "",
            "## Data and training",
            "",
            "- Data: MOSES training split (`moses/dataset/data/train.csv.gz` from `molsets` 0.3.1, "
            "1,584,663 SMILES). Batches are consecutive slices of one permutation of the whole split "
            f"(`torch.randperm`, seed 0); {step} steps x 64 = {step * 64:,} molecules, i.e. "
            f"{step * 64 / 1584663:.0%} of the split, each seen once.",
            "- Loss and model: ChemBFN's own `ChemBFN.cts_loss` (continuous-time loss, "
            "t ~ U(0, 1) per sequence) on ChemBFN's own class, in a plain loop "
            "(`benchmarks/chembfn/train.py`) that mirrors the package's Lightning `train.Model.training_step`"
            + (f": unconditional for steps 1-{args.label_from_step}, then (resumed from that state with the "
               "same optimiser state and the next unseen molecules, `--init-from ... --label qed3`) with the "
               "QED class label, zeroed for each sequence with probability 0.2 as the package's "
               "`uncond_prob` does, so the same network keeps learning the unconditional model for "
               "classifier-free guidance; the label MLP joins AdamW at the same learning rate."
               if labels and args.label_from_step is not None else " for an unconditional model."),
            "- Optimiser: AdamW (weight decay 0.01, as in the package), lr 5e-4 after a 300-step linear "
            "warm-up, constant afterwards (the package default is 5e-5 with 1000 warm-up steps; "
            "raised for this short run); batch 64; dropout 0.01.",
            f"- Steps: {step}; wall time {wall / 60:.1f} min on one CPU thread "
            "(`torch.set_num_threads(1)`, `nice -n 10`, on a 2-core machine shared with other jobs). "
            + ("Both phases were stopped for wall time (the first by its 4500 s cap, the second by hand "
               "right after a save, a few minutes before its clock-time cap, to free the CPU for the "
               "benchmark); the step count is what that allowed." if labels else
               "The run was planned for 7000 steps and stopped by its wall-time cap (4500 s)."),
            f"- Loss (logged as the mean of each 10 steps): first {rows[0]['loss']:.4f}, "
            f"last {rows[-1]['loss']:.4f}; mean of the last 10% {table[-1][2]:.4f}.",
            "",
            "| step | wall (min) | mean loss over this 10% | logged loss at step |",
            "|---:|---:|---:|---:|",
        ]
        lines += [f"| {s} | {wt / 60:.1f} | {m:.4f} | {v:.4f} |" for s, wt, m, v in table]
        lines += [
            "",
            "![loss](chembfn-moses-loss.png)",
            "",
            "## Samples",
            "",
            f"`bayesianflow_for_chem.tool.sample(model, batch_size={args.batch}, sequence_size={MAX_LEN}, "
            f"sample_step=100, device=\"cpu\", method=...)`, {args.n} samples ({args.n_extra} for the "
            f"other samplers) in batches of {args.batch}, "
            f"`torch.manual_seed({args.seed})` before the first batch of each sampler, {args.threads} CPU threads. "
            "`method=\"BFN\"` is the package's default sampler (`ChemBFN.sample`, 100 steps); `ODE:0.5` is the "
            "sampler of the package's example CLI configuration. "
            "Valid: `Chem.MolFromSmiles(s)` is not None and `s` is non-empty (RDKit "
            f"{__import__('rdkit').__version__}); uniqueness: distinct canonical / valid; novelty: distinct "
            "canonical valid not in the MOSES train SMILES as stored / distinct canonical valid "
            f"(RDKit leaves {same:.1%} of 5000 random train SMILES unchanged when canonicalising, "
            "so the stored strings are canonical for this RDKit up to that fraction).",
            "",
            "| sampler | samples | validity | uniqueness | novelty | seconds |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for m, r in results.items():
            lines.append(f"| {m}{' (default)' if m == 'BFN' else ''} | {r['n']} | {r['validity']:.3f} "
                         f"({r['valid']}) | {r['uniqueness']:.3f} ({r['unique']}) | {r['novelty']:.3f} "
                         f"({r['novel']}) | {r['seconds']:.0f} |")
        lines += ["", "Every sampler on this checkpoint (ChemBFN's ODE:T, guided generation, bfnsolvers' solvers) "
                  "against NFE: `benchmarks/results/chembfn/report.md`.",
                  "", "Made by `benchmarks/chembfn/card.py`; trained by `benchmarks/chembfn/train.py`.", ""]
        (OUT / "chembfn-moses.md").write_text("\n".join(lines))
        print("\n".join(lines))

    for method in ["BFN"] + list(args.extra):
        torch.manual_seed(args.seed)
        t0 = time.time()
        smi = []
        n = args.n if method == "BFN" else args.n_extra
        while len(smi) < n:
            smi += sample(model, min(args.batch, n - len(smi)), MAX_LEN, 100,
                          device="cpu", method=method)
        dt = time.time() - t0
        results[method] = metrics(smi, train) | {"seconds": dt}
        print(method, results[method], flush=True)
        if method == "BFN":
            (OUT / "chembfn-moses-samples.txt").write_text("\n".join(smi) + "\n")
        write_card()


if __name__ == "__main__":
    main()
