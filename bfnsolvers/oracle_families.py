"""Families of random exact oracles, by seed: problems that no default was tuned on.

``mixture_member(seed)`` is a random isotropic Gaussian mixture under a ContinuousBFN, ``markov_member(seed)`` a
random first-order Markov chain under a DiscreteBFN. For seeds 0..FAMILY_SIZE-1 each property is drawn by Latin
hypercube sampling (property p of member i at quantile (perm_p(i) + u) / FAMILY_SIZE, one fixed permutation per
property), so the family covers every stated range evenly; later seeds draw the quantiles independently.
``split(seed)``: even seeds are for choosing defaults, odd seeds only for reporting.

Ranges (``MIXTURE_RANGES``, ``MARKOV_RANGES``), log-uniform unless said:
- mixture: dimension D 2-64, components M 2-20 (uniform), component std 0.01-0.3 (narrow to wide; data range
  [-1, 1]), means in the box [-edge, edge]^D (edge 0.5-0.98, uniform) with a fraction (0-1, uniform) of the
  components at coordinates of magnitude 0.9-1 x edge (near the data range's edges), weights Dirichlet(1-10
  concentration, narrow to even), sigma_1 1e-4 - 1e-2.
- Markov: K 2-64, L 8-128, beta_1 = beta_usual(K) x 3^v, v uniform in [-1, 1], with beta_usual(K) = 3 (K/2)^-0.643
  through the published values (K = 2: 3, binarised MNIST; K = 27: 0.75^2, text8); transition rows
  Dirichlet(0.02-2) + 1e-6 (peaked to flat), initial distribution Dirichlet(1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .oracles import GaussianMixtureOracle, MarkovChainOracle
from .processes import BFNProcess, ContinuousBFN, DiscreteBFN

__all__ = ["FAMILY_SIZE", "MARKOV_RANGES", "MIXTURE_RANGES", "FamilyMember", "beta_usual", "markov_member",
           "members", "mixture_member", "split"]

#: Members per family drawn by Latin hypercube (seeds 0..FAMILY_SIZE-1): 20 for choosing, 20 for reporting.
FAMILY_SIZE = 40

MIXTURE_RANGES = {"dim": (2, 64), "components": (2, 20), "std": (0.01, 0.3), "edge": (0.5, 0.98),
                  "edge_fraction": (0.0, 1.0), "weight_concentration": (1.0, 10.0), "sigma_1": (1e-4, 1e-2)}
MARKOV_RANGES = {"num_classes": (2, 64), "length": (8, 128), "beta_factor": (1 / 3, 3.0),
                 "concentration": (0.02, 2.0)}
_LOG = {"dim", "std", "weight_concentration", "sigma_1", "num_classes", "length", "beta_factor", "concentration"}
_INTEGER = {"dim", "components", "num_classes", "length"}


@dataclass
class FamilyMember:
    """One random oracle: ``oracle`` (an exact model), its ``process``, the sample ``shape`` (B left out) and the
    drawn ``params``."""

    family: str
    seed: int
    oracle: GaussianMixtureOracle | MarkovChainOracle
    process: BFNProcess
    shape: tuple[int, ...]
    params: dict = field(default_factory=dict)

    @property
    def split(self) -> str:
        return split(self.seed)


def split(seed: int) -> str:
    """"choosing" for even seeds (defaults may be tuned on them), "reporting" for odd seeds (held out)."""
    _check_seed(seed)
    return "choosing" if seed % 2 == 0 else "reporting"


def members(family: str, which: str = "all", size: int = FAMILY_SIZE) -> list[int]:
    """Seeds 0..size-1 of ``which`` half: "choosing" (even), "reporting" (odd) or "all"."""
    if family not in ("mixture", "markov"):
        raise ValueError(f"family must be 'mixture' or 'markov', got {family!r}")
    if which not in ("choosing", "reporting", "all"):
        raise ValueError(f"which must be 'choosing', 'reporting' or 'all', got {which!r}")
    if not (isinstance(size, int) and size >= 1):
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return [s for s in range(size) if which == "all" or split(s) == which]


def beta_usual(num_classes: int) -> float:
    """The usual discrete beta_1 for K classes: 3 (K/2)^p through (2, 3) and (27, 0.75^2), p = ln(0.1875)/ln(13.5)."""
    p = math.log(0.75 ** 2 / 3) / math.log(27 / 2)
    return 3.0 * (num_classes / 2) ** p


def _check_seed(seed) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _quantiles(family: str, seed: int, names) -> dict[str, float]:
    """One quantile in (0, 1) per property: Latin hypercube for seeds < FAMILY_SIZE, independent after."""
    salt = {"mixture": 1, "markov": 2}[family]
    g = torch.Generator().manual_seed(1_000_003 * salt + seed)
    jitter = torch.rand(len(names), generator=g, dtype=torch.float64)
    out = {}
    for i, name in enumerate(names):
        if seed < FAMILY_SIZE:
            perm = torch.randperm(FAMILY_SIZE, generator=torch.Generator().manual_seed(7919 * salt + i))
            out[name] = (int(perm[seed]) + float(jitter[i])) / FAMILY_SIZE
        else:
            out[name] = float(jitter[i])
    return out


def _value(name: str, q: float, ranges: dict) -> float | int:
    lo, hi = ranges[name]
    if name in _INTEGER:                      # integers: equal mass per integer (log-spaced for log properties)
        if name in _LOG:
            return min(hi, int(math.floor(math.exp(math.log(lo) + q * (math.log(hi + 1) - math.log(lo))))))
        return min(hi, lo + int(math.floor(q * (hi - lo + 1))))
    if name in _LOG:
        return math.exp(math.log(lo) + q * (math.log(hi) - math.log(lo)))
    return lo + q * (hi - lo)


def _dirichlet(shape, concentration: float, g: torch.Generator) -> torch.Tensor:
    """Rows of a symmetric Dirichlet (normalised Gamma draws; torch's Gamma takes no generator, so it runs on the
    global RNG seeded from ``g`` inside fork_rng: reproducible, the global RNG left untouched)."""
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=g))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        x = torch.distributions.Gamma(torch.full(shape, float(concentration), dtype=torch.float64), 1.0).sample()
    return x / x.sum(-1, keepdim=True)


def mixture_member(seed: int) -> FamilyMember:
    """A random isotropic Gaussian mixture oracle (``MIXTURE_RANGES``) with ContinuousBFN(sigma_1, x_range=None)."""
    _check_seed(seed)
    q = _quantiles("mixture", seed, list(MIXTURE_RANGES))
    p = {n: _value(n, q[n], MIXTURE_RANGES) for n in MIXTURE_RANGES}
    g = torch.Generator().manual_seed(2_000_029 + seed)
    d, m, edge = p["dim"], p["components"], p["edge"]
    means = (torch.rand(m, d, generator=g, dtype=torch.float64) * 2 - 1) * edge
    at_edge = torch.rand(m, generator=g, dtype=torch.float64) < p["edge_fraction"]
    sign = torch.where(torch.rand(m, d, generator=g) < 0.5, -1.0, 1.0).double()
    near = sign * edge * (0.9 + 0.1 * torch.rand(m, d, generator=g, dtype=torch.float64))
    means = torch.where(at_edge[:, None], near, means)
    weights = _dirichlet((m,), p["weight_concentration"], g)
    process = ContinuousBFN(p["sigma_1"], x_range=None)
    p["edge_components"] = int(at_edge.sum())
    return FamilyMember("mixture", seed, GaussianMixtureOracle(process, means, p["std"], weights), process, (d,), p)


def markov_member(seed: int) -> FamilyMember:
    """A random first-order Markov chain oracle (``MARKOV_RANGES``) with DiscreteBFN(beta_1, K)."""
    _check_seed(seed)
    q = _quantiles("markov", seed, list(MARKOV_RANGES))
    p = {n: _value(n, q[n], MARKOV_RANGES) for n in MARKOV_RANGES}
    g = torch.Generator().manual_seed(3_000_017 + seed)
    k, length = p["num_classes"], p["length"]
    p["beta_1"] = beta_usual(k) * p["beta_factor"]
    trans = _dirichlet((k, k), p["concentration"], g) + 1e-6
    init = _dirichlet((k,), 1.0, g) + 1e-6
    process = DiscreteBFN(p["beta_1"], k)
    return FamilyMember("markov", seed, MarkovChainOracle(process, init, trans, length), process, (length,), p)
