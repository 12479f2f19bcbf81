"""Discrete data (BFN Sec. 6): categorical input distribution theta = softmax(y)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distributions import Categorical, softmax_last
from .base import T_FLOOR, BFNProcess, TimeLike, as_time, expand_time


class DiscreteBFN(BFNProcess):
    """Discrete BFN with beta(t) = beta_1 t^2 (BFN eq. 185) over K classes.

    State z = y (the sum of all sender samples, theta = softmax(y)), x0 = K e_x - 1,
    a(t) = beta(t), s(t)^2 = K beta(t), lambda(t) = ln(sqrt(beta_1) t / sqrt(K)).
    Network outputs: ``"logits"`` or ``"probs"``; x0_hat = K softmax(logits) - 1.
    """

    default_output_type = "logits"

    def __init__(self, beta_1: float, num_classes: int):
        if not (isinstance(beta_1, (int, float)) and beta_1 > 0 and math.isfinite(beta_1)):
            raise ValueError(f"beta_1 must be a positive number, got {beta_1!r}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.beta_1, self.num_classes = float(beta_1), num_classes
        self.sender_var = float(num_classes)
        self._lam_shift = 0.5 * math.log(self.beta_1 / num_classes)

    def __repr__(self) -> str:
        return f"DiscreteBFN(beta_1={self.beta_1:g}, num_classes={self.num_classes})"

    def beta(self, t: TimeLike) -> Tensor:
        return self.beta_1 * as_time(t) ** 2

    def alpha(self, t: TimeLike) -> Tensor:
        return 2 * self.beta_1 * as_time(t)

    def a(self, t: TimeLike) -> Tensor:
        return self.beta(t)

    def s(self, t: TimeLike) -> Tensor:
        return (self.num_classes * self.beta(t)).sqrt()

    def lam(self, t: TimeLike) -> Tensor:
        return torch.log(as_time(t).clamp_min(T_FLOOR)) + self._lam_shift

    def t_of_lam(self, lam: Tensor) -> Tensor:
        return torch.exp(lam - self._lam_shift)

    def sde_f(self, t: TimeLike) -> Tensor:
        """f = d ln beta / ds = -2/t."""
        return -2 / as_time(t).clamp_min(T_FLOOR)

    def sde_g2(self, t: TimeLike) -> Tensor:
        """g^2 = K d beta / dt = 2 K beta_1 t."""
        return self.num_classes * self.alpha(t)

    def natural(self, z: Tensor, t: TimeLike) -> Tensor:
        return z

    def from_natural(self, eta: Tensor, t: TimeLike) -> Tensor:
        return eta

    def bayesian_update(self, theta: Tensor, y: Tensor) -> Tensor:
        """theta' proportional to theta * exp(y) (BFN eq. 171), computed in log space."""
        return torch.softmax(theta.clamp_min(1e-30).log() + y, -1)

    def sender_sample(self, x: Tensor, alpha: Tensor | float, generator: torch.Generator | None = None) -> Tensor:
        """y ~ N(alpha (K e_x - 1), alpha K I) (BFN eq. 157)."""
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
        return self.num_classes * dist.probs - 1

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
