"""Train a small ChemBFN on MOSES train SMILES, on one CPU thread, resumably.

The network is ChemBFN's own class (``bayesianflow_for_chem.ChemBFN``) and the
loss is its own method (``ChemBFN.cts_loss``); SMILES are tokenised with the
package's own ``smiles2token`` and padded with its own ``collate``.  ChemBFN's
training helper (``bayesianflow_for_chem.train.Model``) is a Lightning module,
so this script is a plain loop that repeats what that helper's
``training_step`` / ``configure_optimizers`` / ``optimizer_step`` do for an
unconditional model: t ~ U(0, 1) per sequence, the continuous-time loss with
no label, AdamW with weight decay 0.01, and a linear learning-rate warm-up
(then a constant rate).  The only deviations are the learning rate and the
warm-up length, which are larger/shorter than the package defaults
(5e-5, 1000 steps) because this run is short.

Data: the MOSES training split (``moses/dataset/data/train.csv.gz`` from the
``molsets`` package, read directly).  Batches are consecutive slices of one
seeded permutation of all 1,584,663 training SMILES, so a run of S steps with
batch B sees the first S*B molecules of that permutation (no repeats while
S*B < 1.58M).

Continued, label-conditioned training (``--init-from STATE --label qed3``):
the run starts from another run's ``state.pt`` (model, AdamW state, step and
RNG; its ``log.csv`` is copied so the loss curve is continuous) and, since
batches are indexed by the global step, continues on the next unseen
molecules of the same permutation.  With ``--label qed3`` each molecule gets a
class in {0, 1, 2}: its RDKit QED against the tertiles of QED on a fixed
seeded subset of 20,000 training SMILES (``--label-subset``, seed ``--seed``;
thresholds written to ``<run>/labels.json`` once and reused on resume).  The
class goes through ChemBFN's own class-input label encoder
``MLP([3, hidden, channel], class_input=True)`` and, exactly as the package's
``Model.training_step`` does it, the embedding is zeroed for each sequence
with probability ``--label-drop`` (the package default is 0.2), so the same
network keeps learning the unconditional model (a zero label vector is the
same as no label) for classifier-free guidance.  The MLP's parameters join
AdamW as a second parameter group at the same learning rate.  QED is computed
per batch on the fly (about 90 ms per 64 molecules against about 800 ms per
step).

Every ``--save-every`` seconds (and at the end) the script writes
``<run>/state.pt`` (model state dict + hparam in ChemBFN's own keys ``nn`` /
``hparam``, optimizer state, step, torch RNG state) and appends to
``<run>/log.csv`` (step, loss, lr, wall seconds).  Re-running the same command
resumes from ``state.pt``.  ``<run>/model.pt`` is the model alone in ChemBFN's
checkpoint format ({"nn": state_dict, "hparam": hparam}), loadable with
``ChemBFN.from_checkpoint``; with a label, ``<run>/mlp.pt`` is the label
encoder in the same format (``MLP.from_checkpoint``).

Usage (the run of the model card)::

    nice -n 10 nohup python benchmarks/chembfn/train.py --run benchmarks/chembfn/run \
        > benchmarks/chembfn/run/stdout.txt 2>&1 &

and its label-conditioned continuation from that run's state at step 5741 (the shipped checkpoint; stopped by
hand right after its save at step 9914)::

    nice -n 10 nohup python benchmarks/chembfn/train.py --run benchmarks/chembfn/run/qed3 \
        --init-from benchmarks/chembfn/run/state.pt --label qed3 --label-drop 0.2 --steps 20000 \
        --save-every 300 --max-wall 9714 > benchmarks/chembfn/run/qed3/stdout.txt 2>&1 &
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import time
from pathlib import Path

import torch

MAX_LEN = 58  # padded sequence length, <start> + up to 56 SMILES tokens + <end>


def moses_path(split: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the molsets package (module `moses`) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "dataset" / "data" / f"{split}.csv.gz"


def read_smiles(split: str) -> list[str]:
    with gzip.open(moses_path(split), "rt") as f:
        lines = f.read().splitlines()
    assert lines[0].strip() == "SMILES", lines[0]
    return [s.strip() for s in lines[1:] if s.strip()]


def qed_classes(smiles: list[str], thresholds: list[float]) -> torch.Tensor:
    """Class of each SMILES: the number of thresholds its RDKit QED reaches (0 .. len(thresholds))."""
    from rdkit import Chem
    from rdkit.Chem import QED

    q = torch.tensor([QED.qed(Chem.MolFromSmiles(s)) for s in smiles], dtype=torch.float64)
    return torch.bucketize(q, torch.tensor(thresholds, dtype=torch.float64), right=True)


def qed_tertiles(smiles: list[str], n: int, seed: int) -> dict:
    """Tertiles of RDKit QED over ``n`` training SMILES drawn without replacement with ``seed``."""
    from rdkit import Chem
    from rdkit.Chem import QED

    g = torch.Generator().manual_seed(seed + 1)
    idx = torch.randperm(len(smiles), generator=g)[:n].tolist()
    q = torch.tensor([QED.qed(Chem.MolFromSmiles(smiles[i])) for i in idx], dtype=torch.float64)
    t = torch.quantile(q, torch.tensor([1 / 3, 2 / 3], dtype=torch.float64)).tolist()
    return {"label": "qed3", "thresholds": t, "subset_n": n, "subset_seed": seed + 1,
            "subset_rule": "torch.randperm(len(train), generator=manual_seed(subset_seed))[:subset_n]",
            "qed_mean": q.mean().item()}


def save_state(run: Path, model, opt, step: int, wall: float, mlp=None) -> None:
    state = {
        "nn": model.state_dict(),
        "hparam": model.hparam,
        "optimizer": opt.state_dict(),
        "step": step,
        "wall": wall,
        "rng": torch.get_rng_state(),
    }
    if mlp is not None:
        state["mlp"] = {"nn": mlp.state_dict(), "hparam": mlp.hparam}
        tmp = run / "mlp.pt.tmp"
        torch.save(state["mlp"], tmp)
        os.replace(tmp, run / "mlp.pt")
    tmp = run / "state.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, run / "state.pt")
    tmp = run / "model.pt.tmp"
    torch.save({"nn": model.state_dict(), "hparam": model.hparam}, tmp)
    os.replace(tmp, run / "model.pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=Path("benchmarks/chembfn/run"))
    ap.add_argument("--steps", type=int, default=7000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channel", type=int, default=128)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--dropout", type=float, default=0.01)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=float, default=180.0, help="seconds")
    ap.add_argument("--log-every", type=int, default=10, help="steps")
    ap.add_argument("--max-wall", type=float, default=float("inf"),
                    help="stop (and save) once the run's total wall time passes this many seconds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init-from", type=Path, default=None,
                    help="another run's state.pt to start from when this run has none (model, AdamW, step, RNG)")
    ap.add_argument("--label", choices=["none", "qed3"], default="none",
                    help="qed3: condition on the QED tertile class through ChemBFN's class-input MLP")
    ap.add_argument("--label-drop", type=float, default=0.2,
                    help="probability a sequence's label embedding is zeroed (classifier-free guidance)")
    ap.add_argument("--label-hidden", type=int, default=128, help="hidden width of the label MLP")
    ap.add_argument("--label-subset", type=int, default=20000, help="SMILES used for the QED tertiles")
    args = ap.parse_args()
    if not 0.0 <= args.label_drop < 1.0:
        raise SystemExit("--label-drop must be in [0, 1)")

    torch.set_num_threads(args.threads)
    # ChemBFN's own collate pads to this fixed length when the variable is set.
    os.environ["MAX_PADDING_LENGTH"] = str(MAX_LEN)
    import json
    import shutil

    import torch.nn.functional as F
    from bayesianflow_for_chem import MLP, ChemBFN
    from bayesianflow_for_chem.data import VOCAB_COUNT, collate, smiles2token
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    args.run.mkdir(parents=True, exist_ok=True)
    smiles = read_smiles("train")
    perm = torch.randperm(len(smiles), generator=torch.Generator().manual_seed(args.seed))

    torch.manual_seed(args.seed)
    model = ChemBFN(VOCAB_COUNT, args.channel, args.layers, args.heads, args.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-8, weight_decay=0.01)
    mlp, thresholds = None, None
    if args.label == "qed3":
        label_file = args.run / "labels.json"
        if not label_file.exists():
            label_file.write_text(json.dumps(qed_tertiles(smiles, args.label_subset, args.seed), indent=1))
        labels = json.loads(label_file.read_text())
        thresholds = labels["thresholds"]
        print(f"QED tertile thresholds {thresholds}", flush=True)
        mlp = MLP([len(thresholds) + 1, args.label_hidden, args.channel], class_input=True)
    step, wall0 = 0, 0.0
    state_file = args.run / "state.pt"
    log_file = args.run / "log.csv"
    if not state_file.exists() and args.init_from is not None:
        # start from another run: its model, optimizer, step, RNG; the label MLP (if any) is new
        state = torch.load(args.init_from, "cpu", weights_only=True)
        assert state["hparam"] == model.hparam, (state["hparam"], model.hparam)
        model.load_state_dict(state["nn"])
        opt.load_state_dict(state["optimizer"])
        step, wall0 = int(state["step"]), float(state["wall"])
        torch.set_rng_state(state["rng"])
        if (args.init_from.parent / "log.csv").exists() and not log_file.exists():
            shutil.copyfile(args.init_from.parent / "log.csv", log_file)
        if mlp is not None:
            opt.add_param_group({"params": list(mlp.parameters())})
        print(f"initialised from {args.init_from} at step {step} (wall {wall0:.0f} s)", flush=True)
    elif state_file.exists():
        state = torch.load(state_file, "cpu", weights_only=True)
        assert state["hparam"] == model.hparam, (state["hparam"], model.hparam)
        model.load_state_dict(state["nn"])
        if mlp is not None:
            mlp.load_state_dict(state["mlp"]["nn"])
            opt.add_param_group({"params": list(mlp.parameters())})
        opt.load_state_dict(state["optimizer"])
        step, wall0 = int(state["step"]), float(state["wall"])
        torch.set_rng_state(state["rng"])
        # drop log rows written after the saved step (they will be recomputed)
        if log_file.exists():
            with open(log_file) as f:
                rows = list(csv.reader(f))
            keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= step]
            with open(log_file, "w", newline="") as f:
                csv.writer(f).writerows(keep)
        print(f"resumed from step {step} (wall {wall0:.0f} s)", flush=True)
    elif mlp is not None:
        opt.add_param_group({"params": list(mlp.parameters())})
    if not log_file.exists():
        with open(log_file, "w", newline="") as f:
            csv.writer(f).writerow(["step", "loss", "lr", "wall_s"])
    n_param = sum(p.numel() for p in model.parameters())
    print(f"ChemBFN {model.hparam}, {n_param} parameters, K={model.K}, "
          f"batch {args.batch}, steps {args.steps}, lr {args.lr}, warmup {args.warmup}", flush=True)

    model.train()
    if mlp is not None:
        mlp.train()
    t_start = time.time()
    t_saved = t_start
    pending: list[list] = []
    run_loss, n_loss = 0.0, 0
    cols = [TextColumn("step"), MofNCompleteColumn(), BarColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*cols, refresh_per_second=0.2) as progress:
        task = progress.add_task("train", total=args.steps, completed=step, loss="-")
        while step < args.steps:
            lo = (step * args.batch) % len(smiles)
            idx = perm[lo:lo + args.batch].tolist()
            batch = collate([{"token": smiles2token(smiles[i])} for i in idx])
            x = batch["token"]
            t = torch.rand((x.shape[0], 1, 1))
            lr = args.lr * min(1.0, (step + 1) / args.warmup)
            for pg in opt.param_groups:
                pg["lr"] = lr
            y = None
            if mlp is not None:
                c = qed_classes([smiles[i] for i in idx], thresholds)
                y = mlp(c[:, None])  # (B, 1, channel)
                # ChemBFN's own label drop: keep each sequence's label with probability 1 - p
                keep = (F.dropout(torch.ones_like(t), args.label_drop, True, True) != 0).float()
                y = y * keep
            loss, _ = model.cts_loss(x, t, y, None)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            run_loss += loss.item()
            n_loss += 1
            now = time.time()
            wall = wall0 + now - t_start
            if step % args.log_every == 0 or step == args.steps:
                pending.append([step, f"{run_loss / n_loss:.6g}", f"{lr:.3g}", f"{wall:.1f}"])
                progress.update(task, completed=step, loss=f"{run_loss / n_loss:.4f}")
                run_loss, n_loss = 0.0, 0
            done = step == args.steps or wall > args.max_wall
            if now - t_saved > args.save_every or done:
                with open(log_file, "a", newline="") as f:
                    csv.writer(f).writerows(pending)
                pending = []
                save_state(args.run, model, opt, step, wall, mlp)
                t_saved = now
                print(f"saved step {step} wall {wall:.0f} s", flush=True)
            if done:
                break
    print(f"finished at step {step}", flush=True)


if __name__ == "__main__":
    main()
