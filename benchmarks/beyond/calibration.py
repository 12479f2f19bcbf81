"""How the calibrated grid's power was chosen, and where calibration does not help (``beyond-calibration.md``)."""
from __future__ import annotations

import math

import torch

from bfnsolvers.bench import oracle_target
from bfnsolvers.calibrate import calibrated_times, speed_profile
from bfnsolvers.defaults import DEFAULT_SPAN, PUBLISHED_ETA
from bfnsolvers.metrics import markov_bigram_tv, markov_nll_gap
from bfnsolvers.oracles import oracle_problem
from bfnsolvers.sampling import sample
from bfnsolvers.schedules import get_times

from .common import mean_over_seeds, pilot_profile, write_md

#: Powers of the calibrated grid compared on the tuning seeds (``calibration``).
POWERS = (0.35, 0.5, 0.65, 0.8, 1.0)


def calibration(path: str = "benchmarks/results/beyond-calibration.md", samples: int = 2000,
                seeds: tuple = (10, 11)) -> None:
    """How the calibrated grid's power was chosen, on tuning seeds apart from the scored ones (0, 1): the Markov
    oracle with bfn-unipc3-t and the final call at t = 1, and the GMM oracle against its default grid (SW2);
    then the entropy-gap cancellation of the SDE on the quadratic-start grid at NFE 5 (seed 0)."""
    lines = ["# Calibrated grids: choosing the power, and where they do not help", "",
             f"Made by `python -m benchmarks.beyond calibration` ({samples} samples x seeds {list(seeds)}, float64,",
             "means over the seeds; pilot: `pilot_profile`, 200 other start states, seed 7).", "",
             "## Markov oracle, `bfn-unipc3-t`, final call at t = 1: |entropy gap| / adjacent-pair TV", "",
             "| NFE | " + " | ".join(f"power {p}" for p in POWERS) + " |", "|---:|" + "---|" * len(POWERS)]
    oracle, process = oracle_problem("markov")
    profile = pilot_profile(oracle, process, (oracle.length,))

    def markov_scores(x):
        return abs(markov_nll_gap(x, oracle.init, oracle.trans)), markov_bigram_tv(x, oracle.init, oracle.trans)

    def markov_run(ts):
        return mean_over_seeds(lambda s: sample(oracle, process, "bfn-unipc3-t", schedule=ts, final="denoise",
                                                shape=(samples, oracle.length), dtype=torch.float64,
                                                generator=torch.Generator().manual_seed(s), lower_order_final=False)[0],
                               markov_scores, seeds)

    for nfe in (5, 6, 8, 10):
        cells = [markov_run(calibrated_times(profile, nfe - 1, p)) for p in POWERS]
        lines.append(f"| {nfe} | " + " | ".join(f"{a:.4f} / {b:.4f}" for a, b in cells) + " |")

    gmm = oracle_target("gmm", torch.device("cpu"))
    t0 = float(gmm.process.t_of_lam(gmm.process.lam(1.0) - DEFAULT_SPAN))   # the span start (sample()'s default when this ran)
    gmm_profile = speed_profile(gmm.model, gmm.process, (200,) + gmm.shape, t0, dtype=torch.float64,
                                generator=torch.Generator().manual_seed(7))
    sw2 = lambda x, s: (gmm.evaluate(x, s)[0]["sw2"],)  # noqa: E731
    lines += ["", "## GMM oracle, `bfn-unipc3`: SW2 (default: log-SNR grid spanning 9, last step dropped)", "",
              "| NFE | default | " + " | ".join(f"power {p}, denoise / drop" for p in (0.5, 0.8)) + " |", "|---:|---|---|---|"]
    for nfe in (5, 10):
        def gmm_run(ts):
            return mean_over_seeds(lambda s: (sample(gmm.model, gmm.process, "bfn-unipc3", schedule=ts, final="denoise",
                                                     shape=(samples,) + gmm.shape, dtype=torch.float64,
                                                     generator=torch.Generator().manual_seed(s),
                                                     lower_order_final=nfe < 10)[0], s),
                                   lambda xs: sw2(*xs), seeds)[0]
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
    write_md(path, lines)
