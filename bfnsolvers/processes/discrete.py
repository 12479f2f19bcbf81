"""Discrete data (BFN Sec. 6): categorical input distribution theta = softmax(y)."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distributions import Categorical, softmax_last
from .accuracy import AccuracySchedule, GravesDiscrete, schedule_from
from .base import T_FLOOR, BFNProcess, TimeLike, as_time, expand_time


class DiscreteBFN(BFNProcess):
    """Discrete BFN over K classes on an accuracy schedule beta(t), by default beta_1 t^2 (BFN eq. 185).

    State z = y (the sum of all sender samples, theta = softmax(y)), x0 = K e_x - 1,
    a(t) = beta(t), s(t)^2 = K beta(t), lambda(t) = ln(beta(t) / K) / 2 (= ln(sqrt(beta_1) t / sqrt(K))).
    Give ``beta_1`` (Graves) or ``beta=``: an :class:`~bfnsolvers.processes.accuracy.AccuracySchedule`
    (e.g. ``ChemBFNDiscrete(beta_1, K)``) or a callable t -> beta(t).

    Natural time: with beta_ref = beta(1) and u(t) = sqrt(beta(t) / beta_ref), beta = beta_ref u^2, so
    z_t = beta_ref u^2 x0 + sqrt(K beta_ref) u eps is exactly the beta_ref t^2 process at time u (the
    network still sees t). The discrete solvers work in u; for beta_1 t^2, u = t.
    Network outputs: ``"logits"`` or ``"probs"``; x0_hat = K softmax(logits) - 1.
    """

    default_output_type = "logits"
    kind = "discrete"
    hparam_names = ("beta_1", "num_classes")

    def __init__(self, beta_1: float | None = None, num_classes: int | None = None, *,
                 beta: AccuracySchedule | Callable[[Tensor], Tensor] | None = None):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.schedule = schedule_from(beta_1, beta, "beta_1", GravesDiscrete)
        own_k = getattr(self.schedule, "num_classes", num_classes)
        if own_k != num_classes:
            raise ValueError(f"beta: the schedule {self.schedule!r} is for num_classes={own_k}, got num_classes={num_classes}")
        self.num_classes = num_classes
        self.sender_var = float(num_classes)
        self.beta_ref = self.schedule.beta_1
        self._half_log_k = 0.5 * math.log(num_classes)

    @property
    def beta_1(self) -> float:
        """beta_1 of the Graves schedule beta_1 t^2 (absent for other schedules: see ``schedule``, ``beta_ref``)."""
        if not isinstance(self.schedule, GravesDiscrete):
            raise AttributeError(f"beta_1: this process's accuracy schedule is {self.schedule!r}, not beta_1 t^2")
        return self.schedule.beta_1

    def __repr__(self) -> str:
        if isinstance(self.schedule, GravesDiscrete):
            return f"DiscreteBFN(beta_1={self.beta_1:g}, num_classes={self.num_classes})"
        return f"DiscreteBFN(beta={self.schedule!r}, num_classes={self.num_classes})"

    def beta(self, t: TimeLike) -> Tensor:
        return self.schedule.beta(as_time(t))

    def alpha(self, t: TimeLike) -> Tensor:
        return self.schedule.alpha(as_time(t))

    def natural_time(self, t: TimeLike) -> Tensor:
        """u(t) = sqrt(beta(t) / beta_ref), beta_ref = beta(1): the time of the equivalent beta_ref u^2 process."""
        return self.schedule.natural_time(as_time(t))

    def t_of_natural_time(self, u: Tensor) -> Tensor:
        """Inverse of ``natural_time``: t = t_of_beta(beta_ref u^2)."""
        return self.schedule.t_of_natural_time(u)

    def a(self, t: TimeLike) -> Tensor:
        return self.beta(t)

    def s(self, t: TimeLike) -> Tensor:
        return (self.num_classes * self.beta(t)).sqrt()

    def lam(self, t: TimeLike) -> Tensor:
        return 0.5 * self.schedule.log_beta(as_time(t).clamp_min(T_FLOOR)) - self._half_log_k

    def t_of_lam(self, lam: Tensor) -> Tensor:
        return self.schedule.t_of_log_beta(2 * (self.check_lam(lam) + self._half_log_k))

    def sde_f(self, t: TimeLike) -> Tensor:
        """f = d ln beta / ds = -alpha / beta (= -2/t for beta_1 t^2)."""
        return -self.schedule.log_beta_rate(as_time(t).clamp_min(T_FLOOR))

    def sde_g2(self, t: TimeLike) -> Tensor:
        """g^2 = K d beta / dt = K alpha (= 2 K beta_1 t)."""
        return self.num_classes * self.alpha(t)

    def natural(self, z: Tensor, t: TimeLike) -> Tensor:
        return z

    def from_natural(self, eta: Tensor, t: TimeLike) -> Tensor:
        return eta

    def bayesian_update(self, theta: Tensor, y: Tensor) -> Tensor:
        """theta' proportional to theta * exp(y) (BFN eq. 171), computed in log space. Public as the textbook step in the
        input-distribution parameters: the samplers use ``bayes_step`` on the SDE state, and tests check they agree."""
        return torch.softmax(theta.clamp_min(1e-30).log() + y, -1)

    def sender_sample(self, x: Tensor, alpha: Tensor | float, generator: torch.Generator | None = None) -> Tensor:
        """y ~ N(alpha (K e_x - 1), alpha K I) (BFN eq. 157; with ``bayesian_update``, the textbook sender step)."""
        x0 = self.to_x0(x)
        alpha = torch.as_tensor(alpha, dtype=x0.dtype)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return alpha * x0 + (alpha * self.num_classes).sqrt() * noise

    def to_x0(self, x: Tensor) -> Tensor:
        if x.is_floating_point():
            raise ValueError("x must hold integer class indices for discrete data")
        if x.numel() and (x.min() < 0 or x.max() >= self.num_classes):
            raise ValueError(f"x must hold class indices in [0, {self.num_classes}), got range [{x.min()}, {x.max()}]")
        return self.num_classes * F.one_hot(x.long(), self.num_classes).float() - 1

    def state_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Class indices of ``shape`` (B, ...) have states of shape (B, ..., K)."""
        return tuple(shape) + (self.num_classes,)

    def sample_shape(self, state_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(state_shape)[:-1]

    def readout(self, dist, how: str, generator=None) -> Tensor:
        """Class indices: the mode ("mean" reads the mode too: classes have no mean), or a draw."""
        return super().readout(dist, "mode" if how == "mean" else how, generator)

    def state_readout(self, z: Tensor, t: Tensor) -> Tensor:
        """argmax y."""
        return z.argmax(-1)

    def net_input(self, z: Tensor) -> Tensor:
        """theta = softmax(y) (a sigmoid for K = 2)."""
        return softmax_last(z)

    def output_distribution(self, output: Tensor, z: Tensor, t: TimeLike, output_type: str = "logits") -> Categorical:
        if output.shape != z.shape:
            raise ValueError(f"model output must have the state's shape {tuple(z.shape)} (..., K), got {tuple(output.shape)}")
        if output_type == "logits":
            return Categorical(output)
        if output_type == "probs":
            return Categorical(output.clamp_min(1e-30).log())
        raise ValueError(f"output_type must be 'logits' or 'probs' for DiscreteBFN, got {output_type!r}")

    def dist_to_x0(self, dist: Categorical) -> Tensor:
        """K e_hat - 1 (``probs`` is a fresh tensor per read: scaled in place unless autograd needs it)."""
        probs = dist.probs
        if probs.requires_grad:
            return self.num_classes * probs - 1
        return probs.mul_(self.num_classes).sub_(1)

    def sample_to_x0(self, dist: Categorical, generator: torch.Generator | None = None) -> Tensor:
        return self.num_classes * F.one_hot(dist.sample(generator), self.num_classes).to(dist.logits.dtype) - 1

    def sender_kl(self, x: Tensor, dist: Categorical, acc: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Monte Carlo KL(p_S(.|x; alpha) || sum_k p_O(k) p_S(.|k; alpha)) with one sender sample (BFN eq. 194).

        Up to terms equal for every k, ln N(y | alpha(K e_k - 1), alpha K I) = y_k, so the
        estimate is y_x - logsumexp_k(ln p_O(k) + y_k), averaged over an antithetic pair
        y = alpha x0 +- sqrt(alpha K) noise (bounded variance of n KL as n grows).
        """
        acc = expand_time(acc, x).unsqueeze(-1)
        x0 = self.to_x0(x)
        spread = (acc * self.num_classes).sqrt() * torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        log_p = torch.log_softmax(dist.logits, -1)
        kl = 0.0
        for y in (acc * x0 + spread, acc * x0 - spread):
            own = y.gather(-1, x.long().unsqueeze(-1)).squeeze(-1)
            kl = kl + (own - torch.logsumexp(log_p + y, -1)) / 2
        return self._sum_event(kl)

    def log_prob(self, dist: Categorical, x: Tensor) -> Tensor:
        return dist.log_prob(x)
