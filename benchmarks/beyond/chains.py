"""The NFE 5-6 result on other Markov chains (``beyond-chains.md``)."""
from __future__ import annotations

import torch

from bfnsolvers.calibrate import calibrated_times
from bfnsolvers.defaults import PUBLISHED_ETA
from bfnsolvers.metrics import markov_bigram_tv, markov_nll_gap
from bfnsolvers.oracles import oracle_problem
from bfnsolvers.sampling import sample
from bfnsolvers.schedules import get_times

from .common import mean_over_seeds, pilot_profile, write_md


def chains(path: str = "benchmarks/results/beyond-chains.md", samples: int = 4000, seeds: tuple = (0, 1)) -> None:
    """The NFE 5-6 result on other Markov chains (oracle_problem("markov", seed) for seeds 1, 2; the benchmarks'
    chain is seed 0): calibrated bfn-unipc3-t with the final call at t = 1 vs the published solvers at NFE 10,
    both metrics against exact probabilities (floor: 8 exact sets)."""
    lines = ["# The NFE 5-6 result on other Markov chains", "",
             f"Made by `python -m benchmarks.beyond chains` ({samples} samples x seeds {list(seeds)}, float32, means over",
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
            return mean_over_seeds(lambda s: sample(oracle, process, solver, schedule=ts, final="denoise",
                                                    shape=(samples, oracle.length),
                                                    generator=torch.Generator().manual_seed(s))[0], scores, seeds)

        floor = mean_over_seeds(lambda r: oracle.sample(samples, torch.Generator().manual_seed(1000 + r)), scores,
                                range(8))
        profile = pilot_profile(oracle, process, (oracle.length,))
        uniform = lambda n: get_times("uniform", n, process, eta)[:-1]  # noqa: E731  (the published last_drop grid)
        cells = [floor, run("sde-bfn-solver2-s", uniform(10)), run("bfn-solver2-s", uniform(10)),
                 run("bfn-unipc3-t", calibrated_times(profile, 4)), run("bfn-unipc3-t", calibrated_times(profile, 5)),
                 run("bfn-unipc3-t", uniform(5))]
        lines.append(f"| {chain} | " + " | ".join(f"{a:.4f} / {b:.4f}" for a, b in cells) + " |")
    write_md(path, lines)
