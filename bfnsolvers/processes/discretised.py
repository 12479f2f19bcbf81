"""Discretised data (BFN Sec. 5): K bins on [-1, 1], the same flow as continuous data."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..constants import SIGMA_X_MAX, SIGMA_X_MIN, T_MIN
from ..distributions import BinDistribution, DiscretisedGaussian, bin_centres
from .accuracy import AccuracySchedule, GravesContinuous
from .base import TimeLike, expand_time
from .continuous import ContinuousBFN


class DiscretisedBFN(ContinuousBFN):
    """Discretised BFN: the continuous flow with a discretised-Gaussian output (BFN eqs. 104-108).

    The schedule is ``sigma_1`` (Graves) or ``beta=`` as for :class:`ContinuousBFN`.

    Network outputs: ``"eps_gaussian"`` (..., 2) = (mu_eps, ln sigma_eps), or
    ``"bin_probs"`` (..., K) (e.g. an exact oracle). x0_hat is the bin mean.
    """

    default_output_type = "eps_gaussian"
    kind = "discretised"
    hparam_names = ("sigma_1", "num_bins")

    def __init__(self, sigma_1: float | None = None, num_bins: int | None = None, t_min: float = T_MIN, *,
                 beta: AccuracySchedule | Callable[[Tensor], Tensor] | None = None):
        super().__init__(sigma_1, x_range=(-1.0, 1.0), t_min=t_min, beta=beta)
        if not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an integer >= 2, got {num_bins!r}")
        self.num_bins = num_bins

    def __repr__(self) -> str:
        if isinstance(self.schedule, GravesContinuous):
            return f"DiscretisedBFN(sigma_1={self.sigma_1:g}, num_bins={self.num_bins})"
        return f"DiscretisedBFN(beta={self.schedule!r}, num_bins={self.num_bins})"

    def centres(self, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
        return bin_centres(self.num_bins, dtype, device)

    def output_distribution(self, output: Tensor, z: Tensor, t: TimeLike, output_type: str = "eps_gaussian"):
        if output_type == "bin_probs":
            if output.shape != z.shape + (self.num_bins,):
                raise ValueError(f"bin_probs output must have shape {tuple(z.shape) + (self.num_bins,)}, got {tuple(output.shape)}")
            return BinDistribution(output)
        if output_type != "eps_gaussian":
            raise ValueError(f"output_type must be 'eps_gaussian' or 'bin_probs' for DiscretisedBFN, got {output_type!r}")
        if output.shape != z.shape + (2,):
            raise ValueError(f"eps_gaussian output must have shape {tuple(z.shape) + (2,)}, got {tuple(output.shape)}")
        mu_x = self._eps_to_x(z, output[..., 0], t)
        tt, _, noise_ratio, below = self._coefficients(t, z)
        log_sigma = output[..., 1].clamp(-10, 10)
        grad = log_sigma.requires_grad                           # in place (one fresh buffer) unless autograd needs it
        sigma_x = noise_ratio * log_sigma.exp() if grad else log_sigma.exp_().mul_(noise_ratio)
        if below:                                                # a host number below t_min: every element
            sigma_x = torch.ones_like(sigma_x)
        elif below is None:                                      # not a host number: where (a host number above
            # t_min needs none: no sync, no full-state where)
            sigma_x = torch.where(tt < self.t_min, torch.ones_like(sigma_x), sigma_x)
        sigma_x = sigma_x.clamp(SIGMA_X_MIN, SIGMA_X_MAX) if grad else sigma_x.clamp_(SIGMA_X_MIN, SIGMA_X_MAX)
        return DiscretisedGaussian(mu_x, sigma_x, self.num_bins)

    def sender_kl(self, x: Tensor, dist, acc: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Monte Carlo KL(N(x, 1/alpha) || sum_k p_O(k) N(k_c, 1/alpha)) (BFN eq. 115).

        One antithetic pair of sender samples y = x +- noise/sqrt(alpha): the O(sqrt(alpha))
        fluctuation cancels, so n KL keeps a bounded variance as n grows.
        """
        acc = expand_time(acc, x)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        log_p = dist.probs.clamp_min(1e-30).log()
        c = self.centres(x.dtype, x.device)
        kl = 0.0
        for y in (x + noise / acc.sqrt(), x - noise / acc.sqrt()):
            log_recv = torch.logsumexp(log_p - acc.unsqueeze(-1) * (y.unsqueeze(-1) - c) ** 2 / 2, -1)
            kl = kl + (-acc * (y - x) ** 2 / 2 - log_recv) / 2
        return self._sum_event(kl)

    def reconstruction_loss(self, model, x, generator=None):
        return super(ContinuousBFN, self).reconstruction_loss(model, x, generator)
