"""The ODE plateau of the published start on the oracles (``benchmarks/results/plateau-<problem>/``)."""
from __future__ import annotations

from bfnsolvers.bench import render_report, run_sweep
from bfnsolvers.defaults import PUBLISHED_ETA


def plateau(problem: str) -> None:
    """The ODE plateau: the published start (t = eta, z ~ N(0, s(eta)^2), ignoring a(eta) E[x]) vs
    the span start (lambda(1) - DEFAULT_SPAN = 9, sample()'s default when this ran), both on the log-SNR grid, NFE up to 1000."""
    out = f"benchmarks/results/plateau-{problem}"
    eta = PUBLISHED_ETA["discrete" if problem == "markov" else "continuous"]
    extra = [{"name": "published-start", "t_start": eta, "final": "denoise"}, {"name": "default"}]
    run_sweep(f"oracle:{problem}", ["bfn-solver++2", "bfn-solver++3"], [10, 20, 50, 200, 1000], 2000, [0], out,
              extra_configs=extra, batch_size=1000)
    render_report(out)
