"""Continuous data (BFN Sec. 4): Gaussian input distribution N(mu, 1/rho)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..constants import T_MIN
from ..distributions import Delta
from .accuracy import AccuracySchedule, GravesContinuous, schedule_from
from .base import T_FLOOR, BFNProcess, TimeLike, as_time, expand_time, host_time


class ContinuousBFN(BFNProcess):
    """Continuous BFN on an accuracy schedule beta(t), by default sigma_1^(-2t) - 1 (BFN eq. 72).

    State z = mu, x0 = x, a(t) = gamma(t) = beta / (1 + beta), s(t)^2 = gamma (1 - gamma) with
    1 - gamma = 1 / (1 + beta) (= sigma_1^(2t) for the default schedule), lambda(t) = ln(beta(t)) / 2,
    t(lambda) = t_of_beta(e^(2 lambda)). Give ``sigma_1`` (Graves) or ``beta=``: an
    :class:`~bfnsolvers.processes.accuracy.AccuracySchedule` or a callable t -> beta(t).
    Network outputs: ``"eps"`` (noise prediction, BFN eq. 84) or ``"x"`` (data prediction);
    x_hat is clipped to ``x_range``.
    """

    default_output_type = "eps"
    kind = "continuous"
    hparam_names = ("sigma_1",)
    sender_var = 1.0

    def __init__(self, sigma_1: float | None = None, x_range: tuple[float, float] | None = (-1.0, 1.0),
                 t_min: float = T_MIN, *, beta: AccuracySchedule | Callable[[Tensor], Tensor] | None = None):
        self.schedule = schedule_from(sigma_1, beta, "sigma_1", GravesContinuous)
        if x_range is not None and not (len(x_range) == 2 and x_range[0] < x_range[1]):
            raise ValueError(f"x_range must be None or (low, high) with low < high, got {x_range!r}")
        if not (isinstance(t_min, (int, float)) and 0 <= t_min < 1):
            raise ValueError(f"t_min must be a number in [0, 1), got {t_min!r}")
        self.x_range, self.t_min = x_range, float(t_min)

    @property
    def sigma_1(self) -> float:
        """sigma_1 of the Graves schedule (absent for other schedules: see ``schedule``)."""
        if not isinstance(self.schedule, GravesContinuous):
            raise AttributeError(f"sigma_1: this process's accuracy schedule is {self.schedule!r}, not sigma_1^(-2t) - 1")
        return self.schedule.sigma_1

    @property
    def log_sigma_1(self) -> float:
        if not isinstance(self.schedule, GravesContinuous):
            raise AttributeError(f"log_sigma_1: this process's accuracy schedule is {self.schedule!r}, not sigma_1^(-2t) - 1")
        return self.schedule.log_sigma_1

    def __repr__(self) -> str:
        if isinstance(self.schedule, GravesContinuous):
            return f"{type(self).__name__}(sigma_1={self.sigma_1:g})"
        return f"{type(self).__name__}(beta={self.schedule!r})"

    # schedule
    def beta(self, t: TimeLike) -> Tensor:
        return self.schedule.beta(as_time(t))

    def alpha(self, t: TimeLike) -> Tensor:
        return self.schedule.alpha(as_time(t))

    def gamma(self, t: TimeLike) -> Tensor:
        """gamma(t) = beta / (1 + beta) (= 1 - sigma_1^(2t), BFN eq. 79)."""
        return self.schedule.gamma(as_time(t))

    # linear SDE
    def a(self, t: TimeLike) -> Tensor:
        return self.gamma(t)

    def s(self, t: TimeLike) -> Tensor:
        t = as_time(t)
        return (self.schedule.gamma(t) * self.schedule.one_minus_gamma(t)).sqrt()

    def lam(self, t: TimeLike) -> Tensor:
        return 0.5 * self.schedule.log_beta(as_time(t).clamp_min(T_FLOOR))

    def t_of_lam(self, lam: Tensor) -> Tensor:
        return self.schedule.t_of_log_beta(2 * self.check_lam(lam))

    def sde_f(self, t: TimeLike) -> Tensor:
        """f = d ln a / ds = -(d gamma / dt) / gamma."""
        t = as_time(t).clamp_min(T_FLOOR)
        return -self.schedule.gamma_rate(t) / self.schedule.gamma(t)

    def sde_g2(self, t: TimeLike) -> Tensor:
        """g^2 = d gamma / dt = alpha / (1 + beta)^2 (= -2 ln(sigma_1) sigma_1^(2t))."""
        return self.schedule.gamma_rate(as_time(t))

    # Bayesian updates (BFN eqs. 49-50): natural parameter rho mu with rho = 1 + beta(t)
    def natural(self, z: Tensor, t: TimeLike) -> Tensor:
        return (1 + self.beta(t)).to(z.dtype) * z

    def from_natural(self, eta: Tensor, t: TimeLike) -> Tensor:
        return eta / (1 + self.beta(t)).to(eta.dtype)

    def bayesian_update(self, mu: Tensor, rho: Tensor | float, y: Tensor, alpha: Tensor | float) -> tuple[Tensor, Tensor | float]:
        """rho' = rho + alpha, mu' = (rho mu + alpha y) / rho' (BFN eqs. 49-50). Public as the textbook step in the
        input-distribution parameters: the samplers use ``bayes_step`` on the SDE state, and tests check they agree."""
        rho_new = rho + alpha
        return (rho * mu + alpha * y) / rho_new, rho_new

    def sender_sample(self, x: Tensor, alpha: Tensor | float, generator: torch.Generator | None = None) -> Tensor:
        """y ~ N(x, 1/alpha) (BFN eq. 86; with ``bayesian_update``, the textbook sender step)."""
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x + noise / torch.as_tensor(alpha, dtype=x.dtype).sqrt()

    # data and network output
    def to_x0(self, x: Tensor) -> Tensor:
        return x

    def state_readout(self, z: Tensor, t: Tensor) -> Tensor:
        """mu / gamma = z / a(t), clipped to ``x_range``."""
        x = z / self.a(t).to(z.dtype)
        return x if self.x_range is None else x.clamp(*self.x_range)

    def net_input(self, z: Tensor) -> Tensor:
        return z

    def _clip(self, x: Tensor) -> Tensor:
        return x if self.x_range is None else x.clamp(*self.x_range)

    def noise_ratio(self, t: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """gamma(t) and sqrt((1 - gamma)/gamma) = s/a, with 1 - gamma = 1/(1 + beta) (sigma_1^(2t), the
        official min_variance^t, for the default schedule) computed directly, not as 1 - gamma (which in
        float32 loses ~6% of its value at t = 1 for sigma_1 = 1e-3); t floored at t_min."""
        t = t.clamp_min(self.t_min)
        one_minus = self.schedule.one_minus_gamma(t)
        gamma = self.schedule.gamma(t)
        return gamma.to(dtype), (one_minus / gamma).sqrt().to(dtype)

    def _coefficients(self, t: TimeLike, z: Tensor) -> tuple[Tensor | None, Tensor | float, Tensor | float, bool | None]:
        """(t, gamma, s/a, below): ``noise_ratio`` at t in z's dtype and whether a time lies below t_min.

        For the checked time of a data prediction (``host_time``: every element of t is one host value)
        gamma and s/a are Python numbers computed by ``noise_ratio`` on the host value in z's dtype (the
        numbers a device tensor of that value gives; a Python number reaches the device as a kernel argument,
        no copy), cached per (value, dtype, t_min, schedule) so a grid's coefficients are computed once, with
        ``below`` a host bool and t = None. Else t broadcast against z (``expand_time``), the coefficients as
        tensors and below = None (unknown on the host: the caller applies a ``where``)."""
        host = host_time(t)
        if host is None:
            tt = expand_time(as_time(t).to(z.device), z)
            return (tt, *self.noise_ratio(tt, z.dtype), None)
        def compute() -> tuple[None, float, float, bool]:
            gamma, noise_ratio = self.noise_ratio(host.tensor, host.tensor.dtype)
            # compared in the state's dtype, as the device-side where compares
            return None, gamma.item(), noise_ratio.item(), bool(host.tensor < self.t_min)

        return self.remembered(("noise_ratio", host.value, host.tensor.dtype, self.t_min), compute)

    def _eps_to_x(self, z: Tensor, eps: Tensor, t: TimeLike) -> Tensor:
        """x_hat = mu/gamma - sqrt((1 - gamma)/gamma) eps_hat, and 0 for t < t_min (BFN eq. 84)."""
        tt, gamma, noise_ratio, below = self._coefficients(t, z)
        x = torch.div(z, gamma).sub_(torch.mul(eps, noise_ratio))   # z / gamma - noise_ratio eps, fresh
        if below is False:                  # a host number above t_min: no device sync, no full-state where
            return x
        if tt is None:                      # a host number below t_min: every element
            return torch.zeros_like(x)
        return torch.where(tt < self.t_min, torch.zeros_like(x), x)

    def output_distribution(self, output: Tensor, z: Tensor, t: TimeLike, output_type: str = "eps") -> Delta:
        if output.shape != z.shape:
            raise ValueError(f"model output must have the state's shape {tuple(z.shape)}, got {tuple(output.shape)}")
        if output_type == "eps":
            x = self._eps_to_x(z, output, t)                      # a fresh tensor: clipped in place
            if self.x_range is None:
                return Delta(x)
            return Delta(x.clamp(*self.x_range) if x.requires_grad else x.clamp_(*self.x_range))
        if output_type == "x":
            return Delta(self._clip(output))
        raise ValueError(f"output_type must be 'eps' or 'x' for {type(self).__name__}, got {output_type!r}")

    def dist_to_x0(self, dist) -> Tensor:
        return dist.mean

    def sample_to_x0(self, dist, generator: torch.Generator | None = None) -> Tensor:
        return dist.sample(generator)

    def sender_kl(self, x: Tensor, dist, acc: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """KL(N(x, 1/alpha) || N(x_hat, 1/alpha)) = alpha/2 ||x - x_hat||^2 (BFN eq. 94)."""
        return acc * self._sum_event((x - dist.mean) ** 2) / 2

    def reconstruction_loss(self, model, x, generator=None):
        raise NotImplementedError("the reconstruction loss is not defined for continuous data "
                                  "(p_O is a point mass); use DiscretisedBFN")
