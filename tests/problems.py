"""Shared toy problems (as torchdiffeq's tests/problems.py): exact oracles small enough for convergence
orders, with a dopri5 reference solution and the measured order of a solver on them."""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from bfnsolvers import ContinuousBFN, DiscreteBFN
from bfnsolvers.denoiser import Denoiser
from bfnsolvers.oracles import GaussianMixtureOracle, MarkovChainOracle
from bfnsolvers.schedules import get_times
from bfnsolvers.solvers import SOLVERS, get_solver


def gmm_beta(t):
    """A non-default continuous schedule as a user callable: beta(t) = exp(c t^1.5) - 1, beta(1) = 1e6 - 1."""
    return torch.expm1(math.log(1e6) * t ** 1.5)


def markov_beta(t):
    """A non-default discrete schedule as a user callable, ChemBFN's form for K = 4, beta_1 = 2:
    beta(t) = -(4/K) ln(1 - c t), c = 1 - e^(-K beta_1 / 4) (linear near t = 0, unlike beta_1 t^2)."""
    return -torch.log1p(-(-math.expm1(-2.0)) * t)


def gmm_oracle(process):
    """Three well-spread 2-D components (std 0.15) under ``process``."""
    means = torch.tensor([[0.5, 0.3], [-0.4, -0.2], [0.1, -0.6]], dtype=torch.float64)
    return GaussianMixtureOracle(process, means, 0.15)


def gmm_problem(beta=None):
    """(the 2-D mixture oracle, its ContinuousBFN): sigma_1 = 1e-3, or the accuracy schedule ``beta``."""
    process = ContinuousBFN(1e-3, x_range=None) if beta is None else ContinuousBFN(beta=beta, x_range=None)
    return gmm_oracle(process), process


def markov_problem(beta=None):
    """(a 4-class, length-5 Markov chain oracle, its DiscreteBFN): beta_1 = 2, or the accuracy schedule ``beta``."""
    process = DiscreteBFN(2.0, 4) if beta is None else DiscreteBFN(beta=beta, num_classes=4)
    trans = torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) + 0.2
    return MarkovChainOracle(process, torch.ones(4), trans, 5), process


#: problem -> (oracle and process, state shape, start time). The "-callable" problems use a user
#: callable schedule (autograd alpha, root-finder inverse); their start times give a log-SNR close to
#: the default problems' (the callable discrete beta is linear near 0, so it starts at 1e-5, not 2e-3).
PROBLEMS = {"gmm": (gmm_problem, (64, 2), 1e-6), "markov": (markov_problem, (16, 5, 4), 2e-3),
            "gmm-callable": (lambda: gmm_problem(gmm_beta), (64, 2), 1e-6),
            "markov-callable": (lambda: markov_problem(markov_beta), (16, 5, 4), 1e-5)}


@functools.lru_cache(maxsize=None)
def reference_problem(problem: str):
    """(oracle, process, z0, z_ref(1), t0): the start state and its dopri5 solution at t = 1 (rtol 1e-11)."""
    make, shape, t0 = PROBLEMS[problem]
    oracle, process = make()
    z0 = process.prior_state(shape, t0, torch.Generator().manual_seed(1), torch.float64)
    ref = SOLVERS["reference"](Denoiser(oracle, process), z0, torch.tensor([t0, 1.0], dtype=torch.float64),
                               rtol=1e-11, atol=1e-11)
    return oracle, process, z0, ref, t0


def measured_order(problem, solver, steps):
    """Fitted log-log slope of max |z_solver(1) - z_ref(1)| against the number of steps (float64, log-SNR grid)."""
    oracle, process, z0, ref, t0 = reference_problem(problem)
    errors = [(get_solver(solver)(Denoiser(oracle, process), z0, get_times("logsnr", n, process, t0)) - ref).abs().max().item()
              for n in steps]
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0], errors
