"""Noise-free trajectory error of the discrete ODE solvers on the Markov oracle (``beyond-trajectory.md``)."""
from __future__ import annotations

import torch

from bfnsolvers.calibrate import calibrated_times
from bfnsolvers.defaults import PUBLISHED_ETA
from bfnsolvers.denoiser import Denoiser
from bfnsolvers.oracles import oracle_problem
from bfnsolvers.schedules import get_times
from bfnsolvers.solvers import get_solver

from .common import NFES, pilot_profile, write_md


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
             f"Made by `python -m benchmarks.beyond trajectory` ({samples} start states z ~ N(0, K beta(eta)), eta = {eta}).",
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
    write_md(path, lines)
