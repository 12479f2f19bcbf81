"""The interface shared by every BFN noise process.

After Xue et al. (BFN-SDE, Sec. 3-4) every BFN is a linear Gaussian process
``z_t = a(t) x0 + s(t) eps`` in BFN time ``t`` (0 = prior, 1 = data), with a
state ``z`` (the input mean ``mu`` or the accumulated sender samples ``y``) and a
"data" ``x0`` (``x`` or ``K e_x - 1``). Solvers only need ``a``, ``s``, the half
log-SNR ``lambda = ln(a/s)`` and its inverse; the rest (network output to data
prediction, Bayesian update, losses) differs per data type.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextvars import ContextVar
from typing import Any, Callable

import torch
from torch import Tensor

from ..rng import randn

#: Times below this are treated as this value where a coefficient diverges at t = 0
#: (lambda, the SDE drift). It keeps every coefficient finite on [0, 1].
T_FLOOR = 1e-12

TimeLike = float | Tensor


class HostTime:
    """The time of the data prediction in progress (``Denoiser.output``), checked on the host: ``value`` (a
    Python float, already rounded to the state's dtype) and ``tensor`` (the same as a CPU 0-dim tensor in that
    dtype). One per (time, dtype, device, batch) and Denoiser fork (``Denoiser._times``)."""

    __slots__ = ("value", "tensor")

    def __init__(self, value: float, tensor: Tensor):
        self.value, self.tensor = value, tensor


#: The device time tensor of the data prediction in progress and its :class:`HostTime`, set only while the
#: processes read that call's output: the Denoiser checked the value on the host, so ``as_time`` skips its
#: range check (a device sync per step on an accelerator) for that very tensor, and the processes read
#: ``t < t_min`` from the host value.
_HOST_TIME: ContextVar[tuple[Tensor, HostTime] | None] = ContextVar("bfnsolvers_host_time", default=None)


def host_time(t: TimeLike) -> HostTime | None:
    """The host record of ``t`` if ``t`` is the checked time of the data prediction in progress, else None."""
    known = _HOST_TIME.get()
    return known[1] if known is not None and known[0] is t else None


def as_time(t: TimeLike, name: str = "t", dtype: torch.dtype = torch.float64) -> Tensor:
    """Return ``t`` as a tensor, checking that it lies in [0, 1]."""
    if not isinstance(t, Tensor):
        t = torch.tensor(float(t), dtype=dtype)
    elif not t.is_floating_point():
        t = t.to(dtype)
    elif host_time(t) is not None:          # checked on the host by the caller (Denoiser.output)
        return t
    # one reduction: NaN fails both comparisons
    if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):
        bad = t[(t < 0) | (t > 1) | torch.isnan(t)].flatten()[0].item()
        raise ValueError(f"{name} must lie in [0, 1] (BFN time), got {bad}")
    return t


def expand_time(t: Tensor, like: Tensor, event_dims: int = 0) -> Tensor:
    """Broadcast a per-sample time of shape () or (B,) against ``like`` (B, ...)."""
    if like.is_floating_point() and t.dtype != like.dtype:
        t = t.to(like.dtype)
    if t.dim() == 0:
        return t
    if t.dim() != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must be a scalar or have shape ({like.shape[0]},), got {tuple(t.shape)}")
    return t.reshape(-1, *([1] * (like.dim() - 1)))


def check_unit_interval(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and 0.0 < float(value) < 1.0):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


class BFNProcess(ABC):
    """A BFN noise process seen as the linear SDE z_t = a(t) x0 + s(t) eps."""

    #: Variance factor of one sender sample: y ~ N(alpha x0, c alpha I) (1 continuous, K discrete).
    sender_var: float = 1.0
    #: The data type, "continuous", "discretised" or "discrete": which solvers apply (``SolverSpec.data``) and
    #: the key of the measured defaults (``bfnsolvers.defaults.DEFAULTS``). Set by every concrete process.
    kind: str

    #: Names of the hyper-parameters that ``hparams`` reports (those the process has: a Graves parameter such
    #: as sigma_1 or beta_1 exists only on the Graves schedule).
    hparam_names: tuple[str, ...] = ()

    def memo(self) -> dict:
        """The process's memo of host numbers derived from times alone (a grid's SDE coefficients, a grid
        time's noise ratio and host record): computed once, read per step; keys name the quantity and the
        times. It holds for the current accuracy schedule only (a new ``schedule`` object starts a new memo),
        is bounded, and is left out when the process is pickled or copied."""
        memo = self.__dict__.get("_memo")
        schedule = getattr(self, "schedule", None)
        if memo is None or len(memo) >= 4096 or memo.get("schedule") is not schedule:
            memo = self.__dict__["_memo"] = {"schedule": schedule}
        return memo

    def remembered(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` for ``key``, computed once and kept in ``memo``."""
        memo = self.memo()
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = compute()
        return hit

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_memo", None)
        return state

    def hparams(self) -> dict:
        """The process's hyper-parameters by name (what an exported checkpoint records)."""
        return {k: getattr(self, k) for k in self.hparam_names if hasattr(self, k)}

    # --- the data type's shapes and readouts ---------------------------------
    def state_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The state's shape for samples of ``shape`` (B, ...): the same (discrete data: + (K,))."""
        return tuple(shape)

    def sample_shape(self, state_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Inverse of ``state_shape``."""
        return tuple(state_shape)

    def readout(self, dist, how: str, generator=None) -> Tensor:
        """Samples from the final output distribution: its mean, its mode, or a draw (``how``)."""
        if how == "mean":
            return dist.mean
        if how == "mode":
            return dist.mode
        if how == "sample":
            return dist.sample(generator)
        raise ValueError(f"readout must be 'mean', 'mode' or 'sample', got {how!r}")

    @abstractmethod
    def state_readout(self, z: Tensor, t: Tensor) -> Tensor:
        """Samples read from the final state without a network call."""

    # --- accuracy schedule (``self.schedule``, processes/accuracy.py) --------
    @abstractmethod
    def beta(self, t: TimeLike) -> Tensor:
        """Accuracy schedule beta(t) (BFN eq. 72 / 185 by default)."""

    @abstractmethod
    def alpha(self, t: TimeLike) -> Tensor:
        """Accuracy rate alpha(t) = d beta / dt."""

    def step_accuracies(self, ts: Tensor) -> Tensor:
        """Accuracies of the steps of a grid: alpha_i = beta(t_i) - beta(t_{i-1})."""
        b = self.beta(ts)
        return b[1:] - b[:-1]

    def n_step_accuracies(self, n: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """alpha_i = beta(i/n) - beta((i-1)/n), i = 1..n (the n-step sampler's accuracies; public as the
        textbook BFN quantity the tests check the SDE view against)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        return self.step_accuracies(torch.linspace(0, 1, n + 1, dtype=dtype))

    # --- the linear SDE (BFN-SDE, Table 1 of bfn-math.md Sec. 3) ------------
    @abstractmethod
    def a(self, t: TimeLike) -> Tensor:
        """Mean coefficient a(t) of z_t | x0."""

    @abstractmethod
    def s(self, t: TimeLike) -> Tensor:
        """Standard deviation s(t) of z_t | x0."""

    @abstractmethod
    def lam(self, t: TimeLike) -> Tensor:
        """Half log-SNR lambda(t) = ln(a/s), increasing in t; t is floored at T_FLOOR."""

    @abstractmethod
    def t_of_lam(self, lam: Tensor) -> Tensor:
        """Exact inverse of lam(t)."""

    def check_lam(self, lam: Tensor | float) -> Tensor:
        """lam as a tensor, checked to lie at or below lambda(1) (above it there is no BFN time)."""
        lam = torch.as_tensor(lam)
        lam = lam if lam.is_floating_point() else lam.double()
        top = float(self.lam(torch.tensor(1.0, dtype=torch.float64)))
        bad = torch.isnan(lam) | (lam.double() > top + 1e-9 * max(1.0, abs(top)))
        if lam.numel() and bool(bad.any()):
            raise ValueError(f"lam must be at most lambda(1) = {top:.6g} (t <= 1), got {lam[bad].flatten()[0].item()}")
        return lam

    @abstractmethod
    def sde_f(self, t: TimeLike) -> Tensor:
        """Drift f of the noising SDE dz = f z ds + g dw in SDE time s = 1 - t: f = d ln a / ds."""

    @abstractmethod
    def sde_g2(self, t: TimeLike) -> Tensor:
        """Squared diffusion g^2 = d(s^2)/ds - 2 f s^2 of the noising SDE."""

    # --- data, flow and Bayesian updates ------------------------------------
    @abstractmethod
    def to_x0(self, x: Tensor) -> Tensor:
        """Map data x to the SDE's x0 (x itself, or K e_x - 1)."""

    def flow_sample(self, x: Tensor, t: TimeLike, generator: torch.Generator | None = None) -> Tensor:
        """Draw the state from the Bayesian flow distribution p_F(z | x; t) = N(a x0, s^2 I)."""
        x0 = self.to_x0(x)
        t = expand_time(as_time(t).to(x0.device), x0)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return self.a(t) * x0 + self.s(t) * noise

    def prior_state(self, shape: tuple[int, ...], t: TimeLike, generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                    mean: Tensor | None = None) -> Tensor:
        """Start of sampling at time t: z ~ N(a(t) mean, s(t)^2 I).

        The published BFN-Solvers use mean = 0, which ignores a(t) E[x0]; this is
        exact only as t -> 0, where the state is the point mass of the prior.
        """
        t = as_time(t)
        noise = randn(shape, generator, dtype, device)
        z = self.s(t).to(dtype) * noise
        if mean is not None:
            z = z + self.a(t).to(dtype) * mean
        return z

    def bayes_step(self, z: Tensor, x0: Tensor, t: TimeLike, t_next: TimeLike, noise: Tensor) -> Tensor:
        """Bayesian update of the state by one sender sample with accuracy beta(t') - beta(t).

        The sender sample is y = alpha x0 + sqrt(c alpha) noise (c = sender_var) in
        natural-parameter form; the update adds it to the natural parameter
        eta(z, t) (BFN eqs. 49-50 continuous, 172-174 discrete).
        """
        t, t_next = as_time(t), as_time(t_next)
        acc = (self.beta(t_next) - self.beta(t)).to(z.dtype)
        eta = self.natural(z, t) + acc * x0 + (self.sender_var * acc).sqrt() * noise
        return self.from_natural(eta, t_next)

    @abstractmethod
    def natural(self, z: Tensor, t: TimeLike) -> Tensor:
        """Natural parameter of the input distribution, linear in the sender samples."""

    @abstractmethod
    def from_natural(self, eta: Tensor, t: TimeLike) -> Tensor:
        """Inverse of ``natural``."""

    # --- network output ------------------------------------------------------
    @abstractmethod
    def net_input(self, z: Tensor) -> Tensor:
        """Input-distribution parameters handed to the network (mu, or theta = softmax(y))."""

    @abstractmethod
    def output_distribution(self, output: Tensor, z: Tensor, t: TimeLike, output_type: str):
        """The output distribution p_O(. | theta, t) from a network output."""

    @abstractmethod
    def dist_to_x0(self, dist) -> Tensor:
        """Data prediction x0_hat = E[x0] under the output distribution."""

    @abstractmethod
    def sample_to_x0(self, dist, generator: torch.Generator | None) -> Tensor:
        """x0 of one sample of the output distribution (used by the original sampler)."""

    def _predict(self, model: Callable, z: Tensor, t: Tensor):
        """The output distribution of a bare network call, for the training losses: ``Denoiser.output`` without
        the sampling options (guidance, temperature, class masks, constraints, NFE count); processes sit below
        ``bfnsolvers.denoiser``, which imports them."""
        output = model(self.net_input(z), t)
        return self.output_distribution(output, z, t, getattr(model, "output_type", self.default_output_type))

    default_output_type: str = ""

    # --- losses (BFN Sec. 3.8-3.10) ------------------------------------------
    def _sum_event(self, v: Tensor) -> Tensor:
        return v.reshape(v.shape[0], -1).sum(-1)

    def loss_inf(self, model: Callable, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Continuous-time loss per sample, L_inf = E_t[alpha(t)/(2c) ||x0 - x0_hat||^2], t ~ U(0, 1),
        with alpha = d beta/dt from the process's schedule.

        Graves schedules: continuous -ln(sigma_1) sigma_1^(-2t) ||x - x_hat||^2 (BFN eq. 101);
        discretised: the same with the mean of the bin distribution (eq. 131);
        discrete: K beta_1 t ||e_x - e_hat||^2 (eq. 205). One t per sample (Monte Carlo).
        """
        t = uniform_times(x.shape[0], generator, torch.float32, x.device)
        z = self.flow_sample(x, t, generator)
        dist = self._predict(model, z, t)
        err = self._sum_event((self.to_x0(x) - self.dist_to_x0(dist)) ** 2)
        return self.alpha(t) / (2 * self.sender_var) * err

    def loss_n(self, model: Callable, x: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Discrete-time loss per sample, L_n = n E_{i ~ U{1..n}} KL(p_S(.|x; alpha_i) || p_R(.|theta_{i-1}; t_{i-1}, alpha_i)).

        BFN eqs. 23-24; closed form for continuous data, Monte Carlo over the sender sample otherwise.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        i = torch.randint(1, n + 1, (x.shape[0],), generator=generator, device=x.device)
        t = (i - 1).float() / n
        acc = self.beta(i.double() / n) - self.beta(t.double())
        z = self.flow_sample(x, t, generator)
        dist = self._predict(model, z, t)
        return n * self.sender_kl(x, dist, acc.float(), generator)

    def reconstruction_loss(self, model: Callable, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """L^r = -ln p_O(x | theta(1); 1) per sample, theta(1) drawn from the flow at t = 1 (BFN eq. 26)."""
        t = torch.ones(x.shape[0], dtype=torch.float32, device=x.device)
        dist = self._predict(model, self.flow_sample(x, t, generator), t)
        return -self._sum_event(dist.log_prob(x))


def uniform_times(batch: int, generator: torch.Generator | None, dtype: torch.dtype, device) -> Tensor:
    """t ~ U(0, 1) per sample."""
    return torch.rand(batch, generator=generator, dtype=dtype, device=device)

