"""Issue "beyond the published solvers": published configurations vs log-SNR grids with a start rule.

Published (our faithful ports, parity-tested): uniform-in-t grid from eta (0.01 continuous,
0.001 discrete), start z ~ N(0, s(eta)^2), last step replaced by x0_hat ("drop").
Ours: uniform-in-lambda grid spanning lambda(1) - span .. lambda(1) (span in {7, 8, 9} half-log-SNR
units, the same for every NFE), lower order at the final steps, final step "denoise" (one call at
t = 1) or "drop" (x0_hat at the last-but-one time). (A first pass with a fixed lambda_start showed
that a fixed start value does not transfer across processes: lambda(1) is 6.9 for the continuous
oracle and -1.9 for the text8-like chain; a fixed span does.) Also our solvers on the uniform and
quadratic grids from the published eta. Discrete data (Markov oracle, text model): our solvers polynomial
in t on the uniform grid (with and without lower order at the final steps), on the quadratic-start grid and
on grids calibrated to the model (``bfnsolvers.calibrate``, pilot start states apart from the scored ones),
the last two with the final call at t = 1; the Markov oracle is scored on two metrics (entropy gap and
adjacent-pair TV). Reference: the original sampler `bfn` at NFE 1000 on its uniform grid.

    python benchmarks/beyond.py            # writes benchmarks/results/beyond-<problem>/
    python benchmarks/beyond.py plateau    # writes benchmarks/results/plateau-<problem>/
    python benchmarks/beyond.py trajectory # writes benchmarks/results/beyond-trajectory.md
    python benchmarks/beyond.py chains     # writes benchmarks/results/beyond-chains.md
    python benchmarks/beyond.py calibration # writes benchmarks/results/beyond-calibration.md
    python benchmarks/beyond.py models     # digits / text checkpoints: writes benchmarks/results/beyond-<name>/

The models' original-sampler references come from their NFE sweeps (benchmarks/checkpoints.sh), which use
the same sample count, seed and per-batch seeds.
"""
from __future__ import annotations

import math


import torch  # noqa: E402

from bfnsolvers.calibrate import calibrated_times, speed_profile  # noqa: E402
from bfnsolvers.checkpoints import load_checkpoint  # noqa: E402
from bfnsolvers.metrics import markov_bigram_tv, markov_nll_gap  # noqa: E402
from bfnsolvers.denoiser import Denoiser  # noqa: E402
from bfnsolvers.oracles import oracle_problem  # noqa: E402
from bfnsolvers.processes import DiscreteBFN  # noqa: E402
from bfnsolvers.bench import oracle_target, read_results, render_report, results_table, run_sweep  # noqa: E402
from bfnsolvers.sampling import PUBLISHED_ETA, sample  # noqa: E402
from bfnsolvers.schedules import get_times  # noqa: E402
from bfnsolvers.solvers import get_solver  # noqa: E402

NFES = [4, 5, 6, 8, 10, 15, 20]
SPANS = [7.0, 8.0, 9.0]
FINALS = ["denoise", "drop"]


def configs(problem: str) -> tuple[list[str], list[dict]]:
    _, process = oracle_problem(problem)
    discrete = problem == "markov"
    eta = PUBLISHED_ETA["discrete" if discrete else "continuous"]
    published = ["bfn-solver2-s", "sde-bfn-solver2-s"] if discrete else ["bfn-solver++2", "sde-bfn-solver++2"]
    extra = [{"name": "published", "schedule": "uniform", "t_start": eta, "final": "drop", "solvers": published}]
    if discrete:   # lambda(1) = -1.9: log-SNR grids waste steps at t < 0.01 (first pass); uniform in t
        ours = ["bfn-solver++3", "bfn-solver3-t", "bfn-unipc3-t", "sde-bfn-unipc2-t", "sde-bfn-unipc3-t"]
        for lower, name in ((True, "uniform-drop"), (False, "uniform-drop-full")):   # full order to the end
            extra.append({"name": name, "schedule": "uniform", "t_start": eta, "final": "drop",
                          "lower_order_final": lower, "solvers": ours})
        # dense near the start, ending with a call at t = 1 (its readout at the last-but-one time would come early)
        extra.append({"name": "quadratic-start-denoise", "schedule": "quadratic-start", "t_start": eta,
                      "final": "denoise", "solvers": ours})
        return sorted(set(published + ours)), extra
    ours = ["bfn-solver++2", "bfn-solver++3", "bfn-unipc3", "sde-bfn-solver++2"]
    for span in SPANS:
        t_start = float(process.t_of_lam(process.lam(1.0) - span))
        for final in FINALS:
            extra.append({"name": f"logsnr{span:.0f}-{final}", "schedule": "logsnr", "t_start": t_start,
                          "final": final, "lower_order_final": True, "solvers": ours})
    for schedule in ("uniform", "quadratic"):   # the published start time eta, our solvers
        extra.append({"name": f"{schedule}-drop", "schedule": schedule, "t_start": eta, "final": "drop",
                      "lower_order_final": True, "solvers": ours})
    return sorted(set(published + ours)), extra


def plateau(problem: str) -> None:
    """The ODE plateau: the published start (t = eta, z ~ N(0, s(eta)^2), ignoring a(eta) E[x]) vs
    sample()'s default start (lambda(1) - 8), both on the log-SNR grid, NFE up to 1000."""
    out = f"benchmarks/results/plateau-{problem}"
    eta = PUBLISHED_ETA["discrete" if problem == "markov" else "continuous"]
    extra = [{"name": "published-start", "t_start": eta, "final": "denoise"}, {"name": "default"}]
    run_sweep(f"oracle:{problem}", ["bfn-solver++2", "bfn-solver++3"], [10, 20, 50, 200, 1000], 2000, [0], out,
              extra_configs=extra, batch_size=1000)
    render_report(out)


def pilot_profile(model, process, shape: tuple[int, ...], pilot: int = 200):
    """The speed profile that calibrated grids come from: ``pilot`` start states (seed 7, apart from every
    scored sample) at the published discrete eta."""
    return speed_profile(model, process, (pilot,) + shape, PUBLISHED_ETA["discrete"],
                         generator=torch.Generator().manual_seed(7))


def trajectory(path: str = "benchmarks/results/beyond-trajectory.md", samples: int = 500) -> None:
    """Noise-free error of the discrete ODE solvers on the Markov oracle: from one set of start states, each
    solver's state at the last grid time against dopri5 (rtol 1e-9) to the same time, as the mean relative
    error |y - y_ref| / |y_ref| and the fraction of positions whose mode readout differs from the reference's."""
    oracle, process = oracle_problem("markov")
    model, eta = Denoiser(oracle, process), PUBLISHED_ETA["discrete"]
    z0 = process.prior_state((samples, oracle.length, process.num_classes), torch.tensor(eta, dtype=torch.float64),
                             torch.Generator().manual_seed(0), torch.float64)
    profile = pilot_profile(model, process, (oracle.length,))
    grids = {"published (uniform, drop)": ("uniform", True), "uniform, denoise": ("uniform", False),
             "quadratic-start, denoise": ("quadratic-start", False), "calibrated, denoise": (profile, False)}
    solvers = ["bfn-solver2-s", "bfn-solver3-t", "bfn-unipc3-t"]
    lines = ["# Discrete ODE solvers: trajectory error on the Markov oracle", "",
             f"Made by `python benchmarks/beyond.py trajectory` ({samples} start states z ~ N(0, K beta(eta)), eta = {eta}).",
             "Each cell: mean |y - y_ref| / |y_ref| at the last grid time, and the fraction of positions whose mode",
             "readout there differs from the reference's (dopri5, rtol 1e-9, same start). 'drop' grids end at the",
             "last-but-one time of the uniform grid and spend their last call on the readout; 'denoise' grids end at",
             "t = 1 and spend it there; both spend NFE calls. 'calibrated': `bfnsolvers.calibrate` from a pilot of 200",
             "other start states (seed 7).", "",
             "| NFE | grid | " + " | ".join(f"`{s}`" for s in solvers) + " |", "|---:|---|" + "---|" * len(solvers)]
    for nfe in NFES:
        for name, (schedule, drop) in grids.items():
            if isinstance(schedule, str):
                ts = get_times(schedule, nfe, process, eta)[:-1] if drop else get_times(schedule, nfe - 1, process, eta)
            else:
                ts = calibrated_times(schedule, nfe - 1)
            ref = get_solver("reference")(model, z0, ts[[0, -1]], rtol=1e-9, atol=1e-9)
            mode_ref = oracle.log_marginals(ref).argmax(-1)
            cells = []
            for solver in solvers:
                y = get_solver(solver)(model, z0, ts)
                err = ((y - ref).norm(dim=-1) / ref.norm(dim=-1)).mean().item()
                flips = (oracle.log_marginals(y).argmax(-1) != mode_ref).double().mean().item()
                cells.append(f"{err:.4f} / {flips:.4f}")
            lines.append(f"| {nfe} | {name} | " + " | ".join(cells) + " |")
    open(path, "w").write("\n".join(lines) + "\n")


def calibration(path: str = "benchmarks/results/beyond-calibration.md", samples: int = 2000,
                seeds: tuple = (10, 11)) -> None:
    """How the calibrated grid's power was chosen, on tuning seeds apart from the scored ones (0, 1): the Markov
    oracle with bfn-unipc3-t and the final call at t = 1, and the GMM oracle against its default grid (SW2);
    then the entropy-gap cancellation of the SDE on the quadratic-start grid at NFE 5 (seed 0)."""
    lines = ["# Calibrated grids: choosing the power, and where they do not help", "",
             f"Made by `python benchmarks/beyond.py calibration` ({samples} samples x seeds {list(seeds)}, float64,",
             "means over the seeds; pilot: `pilot_profile`, 200 other start states, seed 7).", "",
             "## Markov oracle, `bfn-unipc3-t`, final call at t = 1: |entropy gap| / adjacent-pair TV", "",
             "| NFE | " + " | ".join(f"power {p}" for p in POWERS) + " |", "|---:|" + "---|" * len(POWERS)]
    oracle, process = oracle_problem("markov")
    profile = pilot_profile(oracle, process, (oracle.length,))

    def markov_scores(x):
        return abs(markov_nll_gap(x, oracle.init, oracle.trans)), markov_bigram_tv(x, oracle.init, oracle.trans)

    def mean_over_seeds(model, process, solver, ts, shape, score, seed_list=seeds):
        out = [score(sample(model, process, solver, schedule=ts, final="denoise", shape=shape, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(s), lower_order_final=False)[0]) for s in seed_list]
        return [sum(o[i] for o in out) / len(out) for i in range(len(out[0]))]

    for nfe in (5, 6, 8, 10):
        cells = [mean_over_seeds(oracle, process, "bfn-unipc3-t", calibrated_times(profile, nfe - 1, p),
                                 (samples, oracle.length), markov_scores) for p in POWERS]
        lines.append(f"| {nfe} | " + " | ".join(f"{a:.4f} / {b:.4f}" for a, b in cells) + " |")

    gmm = oracle_target("gmm", torch.device("cpu"))
    t0 = float(gmm.process.t_of_lam(gmm.process.lam(1.0) - 9.0))   # sample()'s default start for this process
    gmm_profile = speed_profile(gmm.model, gmm.process, (200,) + gmm.shape, t0, dtype=torch.float64,
                                generator=torch.Generator().manual_seed(7))
    sw2 = lambda x, s: (gmm.evaluate(x, s)[0]["sw2"],)  # noqa: E731
    lines += ["", "## GMM oracle, `bfn-unipc3`: SW2 (default: log-SNR grid spanning 9, last step dropped)", "",
              "| NFE | default | " + " | ".join(f"power {p}, denoise / drop" for p in (0.5, 0.8)) + " |", "|---:|---|---|---|"]
    for nfe in (5, 10):
        def gmm_run(ts):
            out = [sw2(sample(gmm.model, gmm.process, "bfn-unipc3", schedule=ts, final="denoise", shape=(samples,) + gmm.shape,
                              dtype=torch.float64, generator=torch.Generator().manual_seed(s), lower_order_final=nfe < 10)[0], s)[0]
                   for s in seeds]
            return sum(out) / len(out)
        default = gmm_run(get_times("logsnr", nfe, gmm.process, t0)[:-1])
        cells = [f"{gmm_run(calibrated_times(gmm_profile, nfe - 1, p)):.4f} / {gmm_run(calibrated_times(gmm_profile, nfe, p)[:-1]):.4f}"
                 for p in (0.5, 0.8)]
        lines.append(f"| {nfe} | {default:.4f} | " + " | ".join(cells) + " |")

    x = sample(oracle, process, "sde-bfn-unipc3-t", schedule=get_times("quadratic-start", 4, process, PUBLISHED_ETA["discrete"]),
               final="denoise", shape=(4000, oracle.length), dtype=torch.float64, generator=torch.Generator().manual_seed(0))[0]
    exact = oracle.sample(4000, torch.Generator().manual_seed(5))
    lines += ["", "## The entropy gap's cancellation: `sde-bfn-unipc3-t`, quadratic-start grid, NFE 5, seed 0, 4000 samples", "",
              "| samples | pairs with probability < 1e-4 | entropy gap | gap without those pairs' NLL | pair TV |", "|---|---:|---:|---:|---:|"]
    for name, tokens in (("exact", exact), ("SDE, NFE 5", x)):
        logp = oracle.trans[tokens[:, :-1], tokens[:, 1:]].log()
        rare = logp < math.log(1e-4)
        gap = markov_nll_gap(tokens, oracle.init, oracle.trans)
        lines.append(f"| {name} | {rare.double().mean().item():.5f} | {gap:.4f} | "
                     f"{gap + (logp * rare).sum().item() / tokens.numel():.4f} | {markov_bigram_tv(tokens, oracle.init, oracle.trans):.4f} |")
    open(path, "w").write("\n".join(lines) + "\n")


def chains(path: str = "benchmarks/results/beyond-chains.md", samples: int = 4000, seeds: tuple = (0, 1)) -> None:
    """The NFE 5-6 result on other Markov chains (oracle_problem("markov", seed) for seeds 1, 2; the benchmarks'
    chain is seed 0): calibrated bfn-unipc3-t with the final call at t = 1 vs the published solvers at NFE 10,
    both metrics against exact probabilities (floor: 8 exact sets)."""
    lines = ["# The NFE 5-6 result on other Markov chains", "",
             f"Made by `python benchmarks/beyond.py chains` ({samples} samples x seeds {list(seeds)}, float32, means over",
             "the seeds). Cells: |entropy gap| / adjacent-pair TV. Published: uniform grid from eta = 0.001, last step",
             "dropped. Calibrated: `bfnsolvers.calibrate` (pilot: 200 other start states, seed 7), final call at t = 1.",
             "", "| chain | floor | `sde-bfn-solver2-s` NFE 10 | `bfn-solver2-s` NFE 10 | calibrated `bfn-unipc3-t` NFE 5 "
             "| NFE 6 | uniform-drop `bfn-unipc3-t` NFE 5 |", "|---:|---|---|---|---|---|---|"]
    eta = PUBLISHED_ETA["discrete"]
    for chain in (0, 1, 2):
        oracle, process = oracle_problem("markov", seed=chain)

        def scores(x):
            return abs(markov_nll_gap(x, oracle.init, oracle.trans)), markov_bigram_tv(x, oracle.init, oracle.trans)

        def run(solver, ts):
            out = [scores(sample(oracle, process, solver, schedule=ts, final="denoise", shape=(samples, oracle.length),
                                 generator=torch.Generator().manual_seed(s))[0]) for s in seeds]
            return tuple(sum(o[i] for o in out) / len(out) for i in (0, 1))

        exact = [scores(oracle.sample(samples, torch.Generator().manual_seed(1000 + r))) for r in range(8)]
        floor = tuple(sum(e[i] for e in exact) / len(exact) for i in (0, 1))
        profile = pilot_profile(oracle, process, (oracle.length,))
        uniform = lambda n: get_times("uniform", n, process, eta)[:-1]  # noqa: E731  (the published last_drop grid)
        cells = [floor, run("sde-bfn-solver2-s", uniform(10)), run("bfn-solver2-s", uniform(10)),
                 run("bfn-unipc3-t", calibrated_times(profile, 4)), run("bfn-unipc3-t", calibrated_times(profile, 5)),
                 run("bfn-unipc3-t", uniform(5))]
        lines.append(f"| {chain} | " + " | ".join(f"{a:.4f} / {b:.4f}" for a, b in cells) + " |")
    open(path, "w").write("\n".join(lines) + "\n")


#: Powers of the calibrated grid compared on the tuning seeds (``calibration``).
POWERS = (0.35, 0.5, 0.65, 0.8, 1.0)


METRICS = {"gmm": [("sw2", "sliced W2 to exact samples")],
           "markov": [("entropy_gap_abs", "|NLL/token - entropy rate| (nats)"),
                      ("bigram_tv", "total variation of adjacent-pair frequencies to the exact pair probabilities")]}
SAMPLES = {"gmm": 2000, "markov": 4000}
SEEDS = {"gmm": [0], "markov": [0, 1]}
REFERENCE_NFES = {"gmm": [1000], "markov": [50, 1000]}


def _tables(problem: str) -> dict[str, tuple[dict, float, float]]:
    """Per metric: {(solver, config): {nfe: |metric| averaged over the seeds}}, its noise floor and the floor's std."""
    rows = [r for r in read_results(f"benchmarks/results/beyond-{problem}") if r["status"] == "ok"]
    tables = {}
    for metric, _ in METRICS[problem]:
        means = results_table(rows, metric, value=abs, key=lambda r: (r["solver"], r["config_name"]))
        table = {k: {n: cell[0] for n, cell in d.items()} for k, d in means.items()}
        tables[metric] = (table, abs(rows[0]["noise_floor"][metric]), rows[0]["noise_floor_std"][metric])
    return tables


def summary(problems: list[str], path: str = "benchmarks/results/beyond.md") -> None:
    """Best configuration per NFE next to the published solvers (means over the seeds), from the sweeps' JSONL:
    per metric, and for the Markov oracle also by the worse of its two metrics, each as its excess over the
    floor in floor stds (how distinguishable from exact samples)."""
    lines = ["# Beyond the published solvers: oracle results", "",
             "Made by `python benchmarks/beyond.py` (gmm: 2000 samples, seed 0; markov: 4000 samples, seeds 0 and 1,",
             "values are means over the seeds). 'Best' is selected on these same samples: differences below the",
             "noise floor's std are not significant. Noise floor: the metric of independent exact sample sets of",
             "the same size (mean ± std over 8 sets). Configs: see the docstring of `benchmarks/beyond.py`;",
             "'calibrated-denoise' grids come from a pilot run on 200 other start states (seed 7).", ""]

    def best(table: dict, score, n: int, published: bool):
        return min((score(k, n), k) for k, v in table.items()
                   if n in v and (k[1] == "published") == published and k[1] != "uniform")

    def nfe_rows(table: dict, score, show, ratios) -> list[str]:
        """One row per NFE: the best published and the best of ours by ``score``, shown by ``show``."""
        rows = []
        for n in NFES:
            (pub, pk), (ours, ok) = best(table, score, n, True), best(table, score, n, False)
            rows.append(f"| {n} | {show(pk, n)} ({pk[0]}) | {show(ok, n)} ({ok[0]} [{ok[1]}]) | {ratios(pub, ours)} |")
        return rows + [""]

    for problem in problems:
        tables = _tables(problem)
        for metric, label in METRICS[problem]:
            table, floor, floor_std = tables[metric]
            score = lambda k, n: table[k][n]  # noqa: E731
            lines += [f"## oracle:{problem} — {label}", "",
                      f"noise floor {floor:.4f} ± {floor_std:.4f}; original sampler `bfn`: "
                      + ", ".join(f"{v:.4f} at NFE {n}" for n, v in sorted(table[("bfn", "uniform")].items())), "",
                      "| NFE | best published | best of ours (config) | ours / published | ours / floor |",
                      "|---:|---|---|---:|---:|"]
            lines += nfe_rows(table, score, lambda k, n: f"{table[k][n]:.4f}",
                              lambda pub, ours: f"{ours / pub:.2f} | {ours / floor:.2f}")
        if len(tables) == 2:   # a configuration is as good as its worse metric, in floor stds above the floor
            (m1, (t1, f1, s1)), (m2, (t2, f2, s2)) = tables.items()
            score = lambda k, n: max((t1[k][n] - f1) / s1, (t2[k][n] - f2) / s2)  # noqa: E731
            show = lambda k, n: f"{t1[k][n]:.4f} / {t2[k][n]:.4f}"  # noqa: E731
            lines += [f"## oracle:{problem} — both metrics: the worse of ({m1} - floor) / std and ({m2} - floor) / std",
                      "", f"cells: {m1} / {m2}; floors {f1:.4f} ± {s1:.4f} / {f2:.4f} ± {s2:.4f}. One metric alone can "
                      "be fooled: an NLL gap near zero can be two errors cancelling (near-impossible pairs against "
                      "over-concentration), which the pair TV sees.", "",
                      "| NFE | best published | best of ours (config) | worse excess in floor stds: published | ours |",
                      "|---:|---|---|---:|---:|"]
            lines += nfe_rows(t1, score, show, lambda pub, ours: f"{pub:.1f} | {ours:.1f}")
    open(path, "w").write("\n".join(lines))


#: Our discrete solvers on grids calibrated to the model (bfnsolvers.calibrate), final call at t = 1.
CALIBRATED = ["bfn-unipc3-t", "sde-bfn-unipc3-t"]


def calibrated(target: str, model, process, shape: tuple[int, ...], samples: int, seeds: list[int], batch_size: int,
               pilot: int = 200) -> None:
    """One sweep per NFE (the grid depends on it) on a grid from a pilot run of ``pilot`` start states (seed 7,
    apart from the scored samples) from the published eta."""
    profile = pilot_profile(model, process, shape, pilot)
    out = f"benchmarks/results/beyond-{target.removeprefix('oracle:')}"
    for nfe in NFES:
        config = {"name": "calibrated-denoise", "schedule": calibrated_times(profile, nfe - 1).tolist(), "final": "denoise"}
        run_sweep(target, CALIBRATED, [nfe], samples, seeds, out, extra_configs=[config], batch_size=batch_size)


def main(problems: list[str]) -> None:
    for problem in problems:
        solvers, extra = configs(problem)
        out = f"benchmarks/results/beyond-{problem}"
        samples, seeds = SAMPLES[problem], SEEDS[problem]
        run_sweep(f"oracle:{problem}", solvers, NFES, samples, seeds, out, extra_configs=extra, batch_size=1000)
        run_sweep(f"oracle:{problem}", ["bfn"], REFERENCE_NFES[problem], samples, seeds, out,
                  extra_configs=[{"name": "uniform", "schedule": "uniform"}], batch_size=1000)
        if problem == "markov":
            oracle, process = oracle_problem(problem)
            calibrated(f"oracle:{problem}", oracle, process, (oracle.length,), samples, seeds, 1000)
        render_report(out, baseline="bfn")
    summary(["gmm", "markov"])


#: Shipped checkpoints: published solvers and their start eta, our solvers, metric, its label, and whether
#: lower is better ("lower") or closer to the real data's value ("floor").
MODELS = {
    "digits-continuous": (["bfn-solver++2", "sde-bfn-solver++2"], 1e-2,
                          ["bfn-solver++2", "bfn-solver++3", "bfn-unipc3", "sde-bfn-solver++2"], "fd",
                          "Frechet digits distance to the test set (not FID)", "lower"),
    "text-discrete": (["bfn-solver2-s", "sde-bfn-solver2-s"], 1e-3,
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
        if isinstance(process, DiscreteBFN):   # data_shape (L, K): the samples are (L,) class indices
            calibrated(name, model, process, tuple(model.data_shape[:-1]), samples, [0], samples, pilot=64)
        render_report(out)
    models_summary(list(MODELS))


def models_summary(names: list[str], path: str = "benchmarks/results/beyond-models.md") -> None:
    """Best of ours vs best published per NFE, and the smallest NFE at which the original sampler matches ours."""
    from collections import defaultdict
    lines = ["# Beyond the published solvers: shipped checkpoints", "",
             "Made by `python benchmarks/beyond.py models` (256 samples, seed 0; one run, so differences of a few",
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
    open(path, "w").write("\n".join(lines))


COMMANDS = ("models", "trajectory", "chains", "calibration", "plateau")


def parse_args(argv: list[str] | None = None):
    """``beyond.py [PROBLEM ...] | models [NAME ...] | plateau [PROBLEM ...] | trajectory | chains | calibration``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python benchmarks/beyond.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="*", metavar="COMMAND_OR_PROBLEM",
                        help=f"oracle problems (gmm, discretised, markov; default: gmm markov), or one of {COMMANDS} "
                             "followed by its arguments (models: checkpoint names; plateau: problems)")
    args = parser.parse_args(argv)
    what = args.what
    problems = ("gmm", "discretised", "markov")
    head, rest = (what[0], what[1:]) if what and what[0] in COMMANDS else (None, what)
    if head in ("trajectory", "chains", "calibration") and rest:
        parser.error(f"{head} takes no arguments, got {rest}")
    if head == "models" and any(n not in MODELS for n in rest):
        parser.error(f"models: expected checkpoint names among {list(MODELS)}, got {rest}")
    if head in (None, "plateau") and any(p not in problems for p in rest):
        parser.error(f"expected oracle problems among {problems} or a command among {COMMANDS}, got {what}")
    return what


if __name__ == "__main__":
    argv = parse_args()
    torch.set_num_threads(1)
    if argv[:1] == ["models"]:
        models(argv[1:] or list(MODELS))
    elif argv[:1] == ["trajectory"]:
        trajectory()
    elif argv[:1] == ["chains"]:
        chains()
    elif argv[:1] == ["calibration"]:
        calibration()
    elif argv[:1] == ["plateau"]:
        for problem in argv[1:] or ["gmm", "discretised"]:
            plateau(problem)
    else:
        main(argv or ["gmm", "markov"])
