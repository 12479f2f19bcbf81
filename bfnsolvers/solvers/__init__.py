"""Solver registry: every sampler of bfnsolvers, with its order, type and data types."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Callable, Literal

from .bfn import bfn_sampler
from .chembfn import chembfn_ode
from .discrete import adams_t, bfn_solver2_midpoint, bfn_solver2_s, sde_bfn_solver2_s
from .ode import bfn_solver, bfn_solver_pp, euler
from .reference import reference_ode
from .sde import euler_maruyama, sde_bfn_solver, sde_bfn_solver_pp

ALL_DATA = ("continuous", "discretised", "discrete")


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver: ``fn(model, z, ts, **options)`` integrates from ts[0] to ts[-1]."""

    name: str
    fn: Callable
    #: The order of the method's construction (its local error O(h^(order+1)) on smooth problems); the measured
    #: global slopes are in docs/measured.md (float64, tests/test_third_order.py) and may fall a little short.
    order: int
    kind: Literal["ode", "sde"]
    description: str
    data: tuple[str, ...] = ALL_DATA
    nfe_per_step: int = 1
    options: dict = field(default_factory=dict)
    #: Can start at t = 0, where s(0) = 0 and the state is the prior's point mass (the original sampler).
    from_prior: bool = False

    @property
    def stochastic(self) -> bool:
        return self.kind == "sde"

    def __call__(self, model, z, ts, **options):
        return self.fn(model, z, ts, **{**self.options, **options})

    def option_names(self) -> list[str] | None:
        """The keyword options ``fn`` takes besides ``callback`` (None: it takes any, via **kwargs)."""
        try:
            names = _option_names(self.fn)
        except TypeError:                           # an unhashable callable: read its signature each time
            names = _option_names.__wrapped__(self.fn)
        return None if names is None else list(names)

    def unknown_options(self, options: dict) -> list[str]:
        """The names in ``options`` that ``fn`` does not take."""
        names = self.option_names()
        return [] if names is None else sorted(set(options) - set(names))


@lru_cache(maxsize=1024)
def _option_names(fn: Callable) -> tuple[str, ...] | None:
    """``SolverSpec.option_names`` of ``fn``, read from its signature once (``sample`` asks at every call)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return tuple(sorted(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "callback"))


def _specs() -> list[SolverSpec]:
    ode, sde = "ode", "sde"
    return [
        SolverSpec("bfn", bfn_sampler, 1, sde, "original BFN sampler (Graves et al.): sample x ~ p_O, Bayesian update",
                   from_prior=True),
        SolverSpec("euler", euler, 1, ode, "Euler on the probability-flow ODE"),
        SolverSpec("euler-maruyama", euler_maruyama, 1, sde, "Euler-Maruyama on the reverse SDE"),
        SolverSpec("bfn-solver1", partial(bfn_solver, order=1), 1, ode, "noise prediction, first order"),
        SolverSpec("bfn-solver2", partial(bfn_solver, order=2), 2, ode, "noise prediction, multistep second order"),
        SolverSpec("bfn-solver++1", partial(bfn_solver_pp, order=1), 1, ode, "data prediction, first order"),
        SolverSpec("bfn-solver++2", partial(bfn_solver_pp, order=2), 2, ode, "data prediction, multistep second order"),
        SolverSpec("bfn-solver++3", partial(bfn_solver_pp, order=3), 3, ode, "data prediction, multistep third order (3M)"),
        # order 3: UniPC's corrector raises the 2M predictor's order by one (Zhao et al. 2023) with no
        # extra call; measured (float64) 2.86 on the GMM oracle, 2.73 on the Markov one,
        # where the published 3M step (bfn-solver++3, order 3 by construction) measures 3.04 / 2.74
        SolverSpec("bfn-unipc3", partial(bfn_solver_pp, order=2, corrector=True), 3, ode,
                   "data prediction, 2M predictor + quadratic corrector (UniPC-style, no extra call)"),
        SolverSpec("sde-bfn-solver1", partial(sde_bfn_solver, order=1), 1, sde, "noise prediction, SDE, first order"),
        SolverSpec("sde-bfn-solver2", partial(sde_bfn_solver, order=2), 2, sde, "noise prediction, SDE, multistep second order"),
        SolverSpec("sde-bfn-solver++1", partial(sde_bfn_solver_pp, order=1), 1, sde, "data prediction, SDE, first order"),
        SolverSpec("sde-bfn-solver++2", partial(sde_bfn_solver_pp, order=2), 2, sde, "data prediction, SDE, multistep second order"),
        SolverSpec("bfn-solver2-s", bfn_solver2_s, 2, ode, "published discrete ODE solver, second order linearised in s = 1 - t",
                   data=("discrete",)),
        SolverSpec("sde-bfn-solver2-s", sde_bfn_solver2_s, 2, sde, "published discrete SDE solver, second order linearised in s",
                   data=("discrete",)),
        SolverSpec("bfn-solver2-midpoint", bfn_solver2_midpoint, 2, ode,
                   "published discrete single-step ODE solver (midpoint, two calls per step)", data=("discrete",),
                   nfe_per_step=2),
        SolverSpec("bfn-solver3-t", partial(adams_t, order=3), 3, ode,
                   "discrete ODE solver, third order in t (Adams-Bashforth)", data=("discrete",)),
        SolverSpec("bfn-unipc3-t", partial(adams_t, order=3, corrector=True), 3, ode,
                   "discrete ODE solver, third order in t with an Adams-Moulton corrector (no extra call)",
                   data=("discrete",)),
        SolverSpec("sde-bfn-unipc2-t", partial(adams_t, order=2, stochastic=True, corrector=True), 2, sde,
                   "discrete SDE solver, second order in t with a corrector (no extra call)", data=("discrete",)),
        SolverSpec("sde-bfn-unipc3-t", partial(adams_t, order=3, stochastic=True, corrector=True), 3, sde,
                   "discrete SDE solver, third order in t with a corrector (no extra call)", data=("discrete",)),
        SolverSpec("chembfn-ode", chembfn_ode, 1, sde,
                   "ChemBFN's ODE:T sampler: a fresh flow sample at the next time with p for the one-hot, variance x T "
                   "(option ode_temperature, default 0.5)", data=("discrete",), from_prior=True),
        SolverSpec("reference", reference_ode, 5, ode, "adaptive dopri5 on the probability-flow ODE (float64); NFE varies"),
    ]


SOLVERS: dict[str, SolverSpec] = {spec.name: spec for spec in _specs()}


def register_solver(name: str, fn: Callable, order: int, kind: Literal["ode", "sde"], description: str, *,
                    data: tuple[str, ...] = ALL_DATA, nfe_per_step: int = 1, from_prior: bool = False,
                    overwrite: bool = False) -> SolverSpec:
    """Add a solver ``fn(model, z, ts, *, callback=None, **options) -> z`` (integrating ts[0] -> ts[-1] with
    the Denoiser ``model``; SDE solvers also take ``generator`` / ``noise_sampler``) so that ``sample()``
    and the sweeps run it by name."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"name must be a non-empty string without surrounding spaces, got {name!r}")
    if name in SOLVERS and not overwrite:
        raise ValueError(f"name: a solver {name!r} is already registered (pass overwrite=True to replace it)")
    if not callable(fn):
        raise ValueError(f"fn must be callable as fn(model, z, ts, **options), got {type(fn).__name__}")
    if kind not in ("ode", "sde"):
        raise ValueError(f"kind must be 'ode' or 'sde', got {kind!r}")
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    if not data or any(d not in ALL_DATA for d in data):
        raise ValueError(f"data must be a non-empty subset of {ALL_DATA}, got {data!r}")
    if not isinstance(nfe_per_step, int) or nfe_per_step < 1:
        raise ValueError(f"nfe_per_step must be a positive integer, got {nfe_per_step!r}")
    spec = SolverSpec(name, fn, order, kind, description, tuple(data), nfe_per_step, from_prior=from_prior)
    SOLVERS[name] = spec
    return spec


def get_solver(name: str) -> SolverSpec:
    """The registered solver called ``name``; an unknown name lists the valid ones."""
    try:
        return SOLVERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {name!r}") from None


__all__ = ["SOLVERS", "SolverSpec", "get_solver", "register_solver", "bfn_sampler", "bfn_solver", "bfn_solver_pp", "euler",
           "euler_maruyama", "sde_bfn_solver", "sde_bfn_solver_pp", "bfn_solver2_s", "sde_bfn_solver2_s",
           "bfn_solver2_midpoint", "adams_t", "chembfn_ode", "reference_ode"]
