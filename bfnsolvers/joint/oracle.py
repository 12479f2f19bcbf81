"""An exact joint oracle: a mixture of "molecules" (atom types + coordinate template with Gaussian jitter).

Molecule m (weight w_m, n_m real nodes) has types c_m (n_m,) over K classes and a zero-CoM template
X_m (n_m, D); x_pos = X_m + sigma P eps (P: centring over the n_m nodes), types = c_m. Given the joint
state (z_pos = a x_pos + s P eps', y_l ~ N(beta (K e_{c_l} - 1), K beta I)):
  p(m | z) prop. to w_m N(z_pos; a X_m, (a^2 sigma^2 + s^2) P) prod_l theta_l[c_{m,l}]
(restricted to the molecules of the sample's size; on the (n - 1) D subspace; the discrete likelihood
of class k is exp(y_k), i.e. theta_k up to a constant), then
  E[x_pos | z] = sum_m p(m | z) (X_m + (a sigma^2 / v)(z_pos - a X_m)),  p(type_l = k | z) = sum_m p(m | z) [c_{m,l} = k].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..metrics.oracle_metrics import sliced_wasserstein2
from ..processes import ContinuousBFN, DiscreteBFN
from ..processes.base import as_time
from .geometry import com_project
from .process import JointBFN


class JointMoleculeOracle:
    """The exact joint posterior of a molecule mixture (module docstring); a joint model with
    ``output_types = {pos: "x", types: "probs"}`` called as ``oracle(inputs, t, mask=None)``."""

    def __init__(self, joint: JointBFN, templates: Tensor, types: Tensor, sigma: float, weights: Tensor | None = None,
                 sizes: Tensor | None = None, pos: str = "pos", types_name: str = "types"):
        if pos not in joint or types_name not in joint or joint.kind(types_name) != "discrete" or pos not in joint.zero_com:
            raise ValueError(f"joint must have a zero-CoM coordinate modality {pos!r} and a discrete one {types_name!r}, got {joint!r}")
        if templates.dim() != 3 or types.shape != templates.shape[:2]:
            raise ValueError(f"templates must be (M, N, D) and types (M, N), got {tuple(templates.shape)}, {tuple(types.shape)}")
        M, N, D = templates.shape
        K = joint[types_name].num_classes
        if types.is_floating_point() or types.min() < 0 or types.max() >= K:
            raise ValueError(f"types must hold class indices in [0, {K})")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        sizes = torch.full((M,), N) if sizes is None else torch.as_tensor(sizes).long()
        if sizes.shape != (M,) or (sizes < 1).any() or (sizes > N).any():
            raise ValueError(f"sizes must be (M,) = ({M},) integers in [1, {N}]")
        w = torch.ones(M, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (M,) or (w < 0).any() or not w.sum() > 0:
            raise ValueError(f"weights must be non-negative with shape ({M},)")
        self.joint, self.pos, self.types_name = joint, pos, types_name
        self.node_mask = torch.arange(N) < sizes.unsqueeze(1)                       # (M, N)
        self.templates = com_project(templates.double(), self.node_mask) * self.node_mask.unsqueeze(-1)
        self.types = torch.where(self.node_mask, types.long(), torch.zeros_like(types.long()))
        self.sizes, self.sigma, self.weights = sizes, float(sigma), w / w.sum()
        self.output_types = {pos: "x", types_name: "probs"}
        self.num_classes, self.dim = K, D

    @property
    def num_nodes(self) -> int:
        return self.templates.shape[1]

    def _sizes_of(self, mask: Tensor | None, batch: int) -> Tensor:
        if mask is None:
            return torch.full((batch,), self.num_nodes)
        n = mask.sum(1)
        if not torch.equal(mask.cpu(), torch.arange(mask.shape[1]) < n.cpu().unsqueeze(1)):
            raise ValueError("mask: the oracle needs the real nodes first (mask[b] = [True] * n_b + [False] * rest)")
        return n.cpu()

    def log_posterior(self, inputs: dict, t: Tensor, mask: Tensor | None = None) -> Tensor:
        """ln p(m | z) (B, M), float64: the Gaussian term on the zero-CoM subspace plus sum_l ln theta_l[c_{m,l}]."""
        z, theta = inputs[self.pos].double(), inputs[self.types_name].double()
        B, N = z.shape[:2]
        if z.shape[1:] != (self.num_nodes, self.dim) or theta.shape != (B, N, self.num_classes):
            raise ValueError(f"inputs: {self.pos!r} must be (B, {self.num_nodes}, {self.dim}) and {self.types_name!r} "
                             f"(B, {self.num_nodes}, {self.num_classes}), got {tuple(z.shape)}, {tuple(theta.shape)}")
        n = self._sizes_of(mask, B)
        real = (torch.arange(N) < n.unsqueeze(1)).double()                          # (B, N)
        t = as_time(t).double().expand(B)
        process = self.joint[self.pos]
        a, s2 = process.a(t).view(B, 1), (process.s(t) ** 2).view(B, 1)
        v = (a ** 2 * self.sigma ** 2 + s2).clamp_min(1e-300)
        diff = z.unsqueeze(1) - a.view(B, 1, 1, 1) * self.templates.unsqueeze(0)    # (B, M, N, D)
        d2 = ((diff ** 2).sum(-1) * real.unsqueeze(1)).sum(-1)                       # (B, M)
        log_theta = theta.clamp_min(1e-300).log()                                    # (B, N, K)
        onehot = F.one_hot(self.types, self.num_classes).double()                    # (M, N, K)
        lt = torch.einsum("bnk,mnk,bn->bm", log_theta, onehot, real)
        logits = self.weights.log() - d2 / (2 * v) + lt
        logits = logits.masked_fill(self.sizes.unsqueeze(0) != n.unsqueeze(1), float("-inf"))
        if bool(torch.isinf(logits).all(1).any()):
            raise ValueError(f"mask: no molecule of size {sorted(set(n.tolist()) - set(self.sizes.tolist()))} in the oracle")
        return torch.log_softmax(logits, 1)

    def _pad(self, inputs: dict, mask: Tensor | None):
        """Inputs with fewer than N nodes (a network that takes any N): padded with nodes masked out."""
        z, theta = inputs[self.pos], inputs[self.types_name]
        B, n = z.shape[:2]
        if n >= self.num_nodes:
            return inputs, mask, n
        mask = torch.ones(B, n, dtype=torch.bool) if mask is None else mask.cpu()
        mask = torch.cat([mask, torch.zeros(B, self.num_nodes - n, dtype=torch.bool)], 1)
        z = torch.cat([z, z.new_zeros(B, self.num_nodes - n, z.shape[2])], 1)
        theta = torch.cat([theta, theta.new_full((B, self.num_nodes - n, theta.shape[2]), 1 / self.num_classes)], 1)
        return {self.pos: z, self.types_name: theta}, mask, n

    def __call__(self, inputs: dict, t: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        inputs, mask, given = self._pad(inputs, mask)
        out = self._posterior_outputs(inputs, t, mask)
        return {k: v[:, :given] for k, v in out.items()}

    def _posterior_outputs(self, inputs: dict, t: Tensor, mask: Tensor | None) -> dict[str, Tensor]:
        z = inputs[self.pos]
        B = z.shape[0]
        r = self.log_posterior(inputs, t, mask).exp()                                 # (B, M)
        process = self.joint[self.pos]
        tt = as_time(t).double().expand(B)
        a = process.a(tt).view(B, 1, 1, 1)
        v = (a ** 2 * self.sigma ** 2 + (process.s(tt) ** 2).view(B, 1, 1, 1)).clamp_min(1e-300)
        cond = self.templates + (a * self.sigma ** 2 / v) * (z.double().unsqueeze(1) - a * self.templates)
        x = (r.view(B, -1, 1, 1) * cond).sum(1)
        n = self._sizes_of(mask, B)
        real = torch.arange(self.num_nodes) < n.unsqueeze(1)
        x = x * real.unsqueeze(-1)
        probs = torch.einsum("bm,mnk->bnk", r, F.one_hot(self.types, self.num_classes).double())
        probs = torch.where(real.unsqueeze(-1), probs, torch.full_like(probs, 1 / self.num_classes))
        return {self.pos: x.to(z.dtype), self.types_name: probs.to(z.dtype)}

    def sample(self, n: int, generator: torch.Generator | None = None, size: int | None = None):
        """n exact samples: (pos (n, N, D) zero CoM, types (n, N), molecule index (n,), mask (n, N));
        ``size``: only molecules with that many nodes (the mixture conditioned on the size)."""
        w = self.weights if size is None else self.weights * (self.sizes == size)
        if not w.sum() > 0:
            raise ValueError(f"size: no molecule with {size} nodes")
        m = torch.multinomial(w, n, replacement=True, generator=generator)
        mask = self.node_mask[m]
        eps = torch.randn(n, self.num_nodes, self.dim, generator=generator, dtype=torch.float64) * mask.unsqueeze(-1)
        pos = self.templates[m] + self.sigma * com_project(eps, mask)
        return pos, self.types[m], m, mask

    def log_prob(self, pos: Tensor, types: Tensor, mask: Tensor | None = None) -> Tensor:
        """Exact joint log density of (pos, types) per sample: ln sum_m w_m [types = c_m] N(pos; X_m, sigma^2 P)
        on the (n - 1) D dimensional zero-CoM subspace (the molecules of the sample's size)."""
        B = pos.shape[0]
        n = self._sizes_of(mask, B)
        real = torch.arange(self.num_nodes) < n.unsqueeze(1)
        d2 = (((pos.double().unsqueeze(1) - self.templates) ** 2).sum(-1) * real.unsqueeze(1)).sum(-1)
        same = ((types.unsqueeze(1) == self.types) | ~real.unsqueeze(1)).all(-1) & (self.sizes == n.unsqueeze(1))
        dof = ((n - 1) * self.dim).double()
        lp = torch.where(same, self.weights.log() - d2 / (2 * self.sigma ** 2), torch.tensor(float("-inf"), dtype=torch.float64))
        return torch.logsumexp(lp, 1) - 0.5 * dof * math.log(2 * math.pi * self.sigma ** 2)


def assign_to_molecules(oracle: JointMoleculeOracle, pos: Tensor, types: Tensor, mask: Tensor | None = None) -> Tensor:
    """Index of the nearest template among the molecules with the sample's size and exactly its types,
    -1 where no molecule has its types (an invalid sample)."""
    B = pos.shape[0]
    n = oracle._sizes_of(mask, B)
    real = torch.arange(oracle.num_nodes) < n.unsqueeze(1)
    same = ((types.cpu().unsqueeze(1) == oracle.types) | ~real.unsqueeze(1)).all(-1) & (oracle.sizes == n.unsqueeze(1))
    d2 = (((pos.double().cpu().unsqueeze(1) - oracle.templates) ** 2).sum(-1) * real.unsqueeze(1)).sum(-1)
    d2 = d2.masked_fill(~same, float("inf"))
    idx = d2.argmin(1)
    return torch.where(same.any(1), idx, torch.full_like(idx, -1))


def assignment_chi2(assignments: Tensor, weights: Tensor) -> dict[str, float]:
    """Pearson chi-square of the molecule counts against the weights (M - 1 degrees of freedom, invalid
    samples excluded), its p-value, the invalid fraction and the total variation of the frequencies."""
    from scipy import stats

    valid = assignments[assignments >= 0]
    w = weights.double() / weights.double().sum()
    counts = torch.bincount(valid, minlength=len(w)).double()
    expected = w * max(len(valid), 1)
    keep = w > 0
    chi2 = float(((counts - expected) ** 2 / expected)[keep].sum())
    dof = int(keep.sum()) - 1
    return {"chi2": chi2, "dof": dof, "p": float(stats.chi2.sf(chi2, dof)),
            "invalid": float((assignments < 0).double().mean()),
            "tv": float(0.5 * (counts / max(len(valid), 1) - w).abs().sum())}


def joint_features(pos: Tensor, types: Tensor, num_classes: int) -> Tensor:
    """Flattened [coordinates, one-hot types] per sample (fixed size, no padding)."""
    return torch.cat([pos.double().flatten(1), F.one_hot(types.long(), num_classes).double().flatten(1)], 1)


def joint_sliced_w2(pos: Tensor, types: Tensor, ref_pos: Tensor, ref_types: Tensor, num_classes: int,
                    n_projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced W2 between two joint sample sets on [coordinates, one-hot types] (``sliced_wasserstein2``)."""
    return sliced_wasserstein2(joint_features(pos, types, num_classes), joint_features(ref_pos, ref_types, num_classes),
                               n_projections, generator)


def joint_oracle_problem(seed: int = 0, sizes: tuple[int, ...] | None = None) -> tuple[JointMoleculeOracle, JointBFN]:
    """The benchmark's joint oracle: 4 molecules of 5 nodes in 3-D over K = 5 types, weights 0.4/0.3/0.2/0.1,
    jitter sigma = 0.1, templates N(0, 0.5^2) centred; molecules 0 and 1 share their types (only the
    coordinates tell them apart), 2 and 3 share their template (only the types do). ContinuousBFN(sigma_1 =
    1e-3, no clipping) for the coordinates and DiscreteBFN(beta_1 = 3, K = 5) for the types.
    ``sizes`` (one per molecule, <= 5): molecules with fewer real nodes (padded), for the mask tests."""
    joint = JointBFN(pos=ContinuousBFN(1e-3, x_range=None), types=DiscreteBFN(3.0, 5), zero_com="pos")
    g = torch.Generator().manual_seed(seed)
    templates = 0.5 * torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    templates[3] = templates[2]
    types = torch.randint(0, 5, (4, 5), generator=g)
    types[1] = types[0]
    types[3] = (types[2] + 1 + torch.randint(0, 4, (5,), generator=g)) % 5
    sizes_t = None if sizes is None else torch.tensor(sizes)
    oracle = JointMoleculeOracle(joint, templates, types, 0.1, torch.tensor([0.4, 0.3, 0.2, 0.1]), sizes_t)
    return oracle, joint


def jitter_ratio(oracle: JointMoleculeOracle, pos: Tensor, assignments: Tensor, mask: Tensor | None = None) -> float:
    """mean ||x - X_m||^2 / ((n - 1) D sigma^2) over valid samples, m the assigned molecule: 1 for exact
    samples (the jitter is sigma^2 on each of the (n - 1) D zero-CoM dimensions)."""
    ok = assignments >= 0
    n = oracle._sizes_of(mask, pos.shape[0])[ok]
    d2 = ((pos.double().cpu()[ok] - oracle.templates[assignments[ok]]) ** 2).sum((1, 2))
    return float((d2 / ((n - 1) * oracle.dim * oracle.sigma ** 2)).mean())


def coordinate_sliced_w2(pos: Tensor, ref_pos: Tensor, n_projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced W2 between two sets of coordinates (fixed size), flattened to (B, N D)."""
    return sliced_wasserstein2(pos.double().flatten(1), ref_pos.double().flatten(1), n_projections, generator)
