"""The shipped checkpoints: published solvers vs ours with sample()'s defaults (``beyond-models.md``)."""
from __future__ import annotations

from collections import defaultdict

from bfnsolvers.bench import read_results, render_report, run_sweep
from bfnsolvers.checkpoints import load_checkpoint
from bfnsolvers.defaults import PUBLISHED_ETA

from .common import NFES, calibrated, write_md

#: Shipped checkpoints: published solvers and their start eta, our solvers, metric, its label, and whether
#: lower is better ("lower") or closer to the real data's value ("floor").
MODELS = {
    "digits-continuous": (["bfn-solver++2", "sde-bfn-solver++2"], PUBLISHED_ETA["continuous"],
                          ["bfn-solver++2", "bfn-solver++3", "bfn-unipc3", "sde-bfn-solver++2"], "fd",
                          "Frechet digits distance to the test set (not FID)", "lower"),
    "text-discrete": (["bfn-solver2-s", "sde-bfn-solver2-s"], PUBLISHED_ETA["discrete"],
                      ["bfn-unipc3-t", "sde-bfn-unipc2-t", "sde-bfn-unipc3-t"], "char_nll",
                      "|char 7-gram NLL of the samples - that of real test text| (nats/char)", "floor"),
}
#: Configurations of ours measured beside sample()'s defaults, per checkpoint.
MODEL_EXTRA = {"text-discrete": [{"name": "quadratic-start-denoise", "schedule": "quadratic-start", "final": "denoise",
                                  "solvers": ["bfn-unipc3-t", "sde-bfn-unipc3-t"]}]}


def models(names: list[str], samples: int = 256) -> None:
    """Published solvers (uniform t from eta, last step dropped) vs ours with sample()'s defaults."""
    for name in names:
        published, eta, ours, _, _, _ = MODELS[name]
        extra = [{"name": "published", "schedule": "uniform", "t_start": eta, "final": "drop", "solvers": published},
                 {"name": "default", "solvers": ours}] + MODEL_EXTRA.get(name, [])
        out = f"benchmarks/results/beyond-{name}"
        run_sweep(name, sorted(set(published + ours)), NFES, samples, [0], out, extra_configs=extra, batch_size=samples)
        model, process = load_checkpoint(name)
        if process.kind == "discrete":   # data_shape (L, K): the samples are (L,) class indices
            calibrated(name, model, process, process.sample_shape(tuple(model.data_shape)), samples, [0], samples,
                       pilot=64)
        render_report(out)
    models_summary(list(MODELS))


def models_summary(names: list[str], path: str = "benchmarks/results/beyond-models.md") -> None:
    """Best of ours vs best published per NFE, and the smallest NFE at which the original sampler matches ours."""
    lines = ["# Beyond the published solvers: shipped checkpoints", "",
             "Made by `python -m benchmarks.beyond models` (256 samples, seed 0; one run, so differences of a few",
             "percent are noise). Published: our parity-tested ports on the uniform grid from the published eta,",
             "last step dropped. Ours: `bfnsolvers.sample` defaults (grid, start, final step) with each solver.", ""]
    for name in names:
        _, _, _, metric, label, better = MODELS[name]
        rows = [r for r in read_results(f"benchmarks/results/beyond-{name}") if r["status"] == "ok"]
        if not rows:   # not swept yet
            continue
        floor = rows[0]["noise_floor"][metric]
        score = (lambda v: v) if better == "lower" else (lambda v: abs(v - floor))  # noqa: E731
        table = defaultdict(dict)
        for r in rows:
            table[(r["solver"], r["config_name"])][r["nfe"]] = score(r["metrics"][metric])
        bfn = {r["nfe"]: score(r["metrics"][metric]) for r in read_results(f"benchmarks/results/{name}")
               if r["status"] == "ok" and r["solver"] == "bfn" and r["samples"] == rows[0]["samples"]}
        lines += [f"## {name} — {label}", "", f"real data (floor): {floor:.3f}; original sampler `bfn`: "
                  + ", ".join(f"{v:.3f} at NFE {n}" for n, v in sorted(bfn.items())), "",
                  "| NFE | best published | best of ours | ours / published | `bfn` needs NFE |", "|---:|---|---|---:|---:|"]
        for n in NFES:
            pub = min((v[n], k[0]) for k, v in table.items() if k[1] == "published" and n in v)
            best = min((v[n], k[0] + ("" if k[1] == "default" else f" [{k[1]}]")) for k, v in table.items()
                       if k[1] not in ("published", "uniform") and n in v)
            match = min((m for m, v in bfn.items() if v <= best[0]), default=None)
            lines.append(f"| {n} | {pub[0]:.3f} ({pub[1]}) | {best[0]:.3f} ({best[1]}) | {best[0] / pub[0]:.2f} | "
                         + (f"{match}" if match else f"> {max(bfn)}") + " |")
        lines.append("")
    write_md(path, lines, newline=False)
