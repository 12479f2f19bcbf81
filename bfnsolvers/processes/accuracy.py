"""Accuracy schedules beta(t): the one free function of a BFN.

A schedule gives beta(t) (increasing, beta(0) = 0), its rate alpha(t) = d beta / dt and the inverse
t(beta), vectorised over tensors and accurate in float64. Every coefficient of a process (a, s, lambda,
the SDE drift and diffusion, step accuracies, natural parameters) follows from it:

- continuous / discretised: gamma = beta / (1 + beta), a = gamma, s^2 = gamma (1 - gamma),
  1 - gamma = 1 / (1 + beta), lambda = ln(beta) / 2, t(lambda) = t(beta = e^(2 lambda));
- discrete (K classes): a = beta, s^2 = K beta, lambda = ln(beta / K) / 2.

Built-ins: :class:`GravesContinuous` (sigma_1^(-2t) - 1, BFN eq. 72), :class:`GravesDiscrete`
(beta_1 t^2, eq. 185), :class:`ChemBFNDiscrete` (-4 ln(1 - t + t e^(-K beta_1 / 4)) / K), and
:class:`CallableSchedule` for any user function (alpha by autograd, the inverse by a safeguarded
Newton iteration). The optional closed forms (``log_beta``, ``t_of_log_beta``, ``gamma``,
``one_minus_gamma``, ``gamma_rate``, ``log_beta_rate``, ``natural_time``) have generic defaults that are
numerically sound; the built-ins override them where a better form exists (expm1, sigma_1^(2t)).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import Tensor

TimeLike = float | Tensor

#: Points of the float64 grid on [0, 1] on which a user's beta is validated and tabulated.
CHECK_POINTS = 4097


def _as_tensor(x: TimeLike) -> Tensor:
    if isinstance(x, Tensor):
        return x if x.is_floating_point() else x.to(torch.float64)
    return torch.tensor(float(x), dtype=torch.float64)


class AccuracySchedule(ABC):
    """beta(t) on [0, 1]: beta(0) = 0, strictly increasing. Methods keep the dtype of their input."""

    @abstractmethod
    def beta(self, t: TimeLike) -> Tensor:
        """Accuracy beta(t)."""

    @abstractmethod
    def alpha(self, t: TimeLike) -> Tensor:
        """Rate alpha(t) = d beta / dt."""

    @abstractmethod
    def t_of_beta(self, b: TimeLike) -> Tensor:
        """Inverse of beta on [0, beta(1)]."""

    # optional closed forms, generic defaults
    def log_beta(self, t: TimeLike) -> Tensor:
        """ln beta(t) (-inf at t = 0)."""
        return torch.log(self.beta(t))

    def t_of_log_beta(self, log_b: TimeLike) -> Tensor:
        """Inverse of ln beta: t(ln beta) = t_of_beta(e^(ln beta))."""
        return self.t_of_beta(torch.exp(_as_tensor(log_b)))

    def log_beta_rate(self, t: TimeLike) -> Tensor:
        """d ln beta / dt = alpha / beta."""
        return self.alpha(t) / self.beta(t)

    def gamma(self, t: TimeLike) -> Tensor:
        """gamma = beta / (1 + beta) (continuous flow, BFN eq. 79)."""
        b = self.beta(t)
        return b / (1 + b)

    def one_minus_gamma(self, t: TimeLike) -> Tensor:
        """1 - gamma = 1 / (1 + beta), computed without the cancellation of 1 - gamma."""
        return 1 / (1 + self.beta(t))

    def gamma_rate(self, t: TimeLike) -> Tensor:
        """d gamma / dt = alpha / (1 + beta)^2 = alpha (1 - gamma)^2."""
        return self.alpha(t) * self.one_minus_gamma(t) ** 2

    @property
    def beta_1(self) -> float:
        """beta(1), the final accuracy."""
        return float(self.beta(torch.tensor(1.0, dtype=torch.float64)))

    def natural_time(self, t: TimeLike) -> Tensor:
        """u(t) = sqrt(beta(t) / beta(1)), in which beta = beta(1) u^2 (u(0) = 0, u(1) = 1)."""
        return (self.beta(t) / self.beta_1).sqrt()

    def t_of_natural_time(self, u: TimeLike) -> Tensor:
        """Inverse of ``natural_time``: t = t_of_beta(beta(1) u^2)."""
        return self.t_of_beta(self.beta_1 * _as_tensor(u) ** 2)


class GravesContinuous(AccuracySchedule):
    """beta(t) = sigma_1^(-2t) - 1 (BFN eq. 72): alpha = -2 ln(sigma_1) sigma_1^(-2t),
    t(beta) = ln(1 + beta) / (-2 ln sigma_1), gamma = 1 - sigma_1^(2t)."""

    def __init__(self, sigma_1: float):
        if not (isinstance(sigma_1, (int, float)) and 0.0 < float(sigma_1) < 1.0):
            raise ValueError(f"sigma_1 must be a number in (0, 1), got {sigma_1!r}")
        self.sigma_1 = float(sigma_1)
        self.log_sigma_1 = math.log(self.sigma_1)

    def __repr__(self) -> str:
        return f"GravesContinuous(sigma_1={self.sigma_1:g})"

    def beta(self, t):
        return torch.expm1(-2 * self.log_sigma_1 * _as_tensor(t))

    def alpha(self, t):
        return -2 * self.log_sigma_1 * torch.exp(-2 * self.log_sigma_1 * _as_tensor(t))

    def t_of_beta(self, b):
        return torch.log1p(_as_tensor(b)) / (-2 * self.log_sigma_1)

    def t_of_log_beta(self, log_b):
        """ln(1 + e^(ln beta)) = softplus(ln beta): no overflow for large ln beta."""
        return torch.nn.functional.softplus(_as_tensor(log_b)) / (-2 * self.log_sigma_1)

    def gamma(self, t):
        return -torch.expm1(2 * self.log_sigma_1 * _as_tensor(t))

    def one_minus_gamma(self, t):
        return torch.exp(2 * self.log_sigma_1 * _as_tensor(t))

    def gamma_rate(self, t):
        return -2 * self.log_sigma_1 * torch.exp(2 * self.log_sigma_1 * _as_tensor(t))

    @property
    def beta_1(self) -> float:
        return self.sigma_1 ** -2 - 1


class GravesDiscrete(AccuracySchedule):
    """beta(t) = beta_1 t^2 (BFN eq. 185): alpha = 2 beta_1 t, t(beta) = sqrt(beta / beta_1);
    its natural time u = sqrt(beta / beta_1) is t itself."""

    def __init__(self, beta_1: float):
        if not (isinstance(beta_1, (int, float)) and beta_1 > 0 and math.isfinite(beta_1)):
            raise ValueError(f"beta_1 must be a positive number, got {beta_1!r}")
        self._beta_1 = float(beta_1)

    def __repr__(self) -> str:
        return f"GravesDiscrete(beta_1={self._beta_1:g})"

    def beta(self, t):
        return self._beta_1 * _as_tensor(t) ** 2

    def alpha(self, t):
        return 2 * self._beta_1 * _as_tensor(t)

    def t_of_beta(self, b):
        return (_as_tensor(b) / self._beta_1).sqrt()

    def log_beta(self, t):
        return math.log(self._beta_1) + 2 * torch.log(_as_tensor(t))

    def t_of_log_beta(self, log_b):
        return torch.exp((_as_tensor(log_b) - math.log(self._beta_1)) / 2)

    def log_beta_rate(self, t):
        return 2 / _as_tensor(t)

    @property
    def beta_1(self) -> float:
        return self._beta_1

    def natural_time(self, t):
        return _as_tensor(t)

    def t_of_natural_time(self, u):
        return _as_tensor(u)


class ChemBFNDiscrete(AccuracySchedule):
    """ChemBFN's discrete schedule beta(t) = -4 ln(1 - t + t e^(-K beta_1 / 4)) / K, beta(1) = beta_1.

    With q = e^(-K beta_1 / 4) and c = 1 - q: beta = -(4/K) ln(1 - c t), alpha = (4/K) c / (1 - c t),
    t(beta) = (1 - e^(-K beta / 4)) / c. 1 - c t is computed as 1 + log1p's argument -c t where
    c t <= 1/2 and as (1 - t) + t q (both terms exact or positive) above, so that beta and alpha keep
    full relative accuracy at t -> 1 even when q is tiny (large K beta_1).
    """

    def __init__(self, beta_1: float, num_classes: int):
        if not (isinstance(beta_1, (int, float)) and beta_1 > 0 and math.isfinite(beta_1)):
            raise ValueError(f"beta_1 must be a positive number, got {beta_1!r}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self._beta_1, self.num_classes = float(beta_1), num_classes
        self._q = math.exp(-num_classes * self._beta_1 / 4)
        self._c = -math.expm1(-num_classes * self._beta_1 / 4)

    def __repr__(self) -> str:
        return f"ChemBFNDiscrete(beta_1={self._beta_1:g}, num_classes={self.num_classes})"

    def _log_one_minus_ct(self, t: Tensor) -> Tensor:
        ct = self._c * t
        return torch.where(ct <= 0.5, torch.log1p(-ct), torch.log((1 - t) + t * self._q))

    def beta(self, t):
        return -4 / self.num_classes * self._log_one_minus_ct(_as_tensor(t))

    def alpha(self, t):
        return 4 / self.num_classes * self._c * torch.exp(-self._log_one_minus_ct(_as_tensor(t)))

    def t_of_beta(self, b):
        return -torch.expm1(-self.num_classes * _as_tensor(b) / 4) / self._c

    @property
    def beta_1(self) -> float:
        return self._beta_1


class CallableSchedule(AccuracySchedule):
    """A user's beta(t) (an elementwise torch function of a float64 tensor), evaluated in float64.

    alpha = d beta / dt by autograd unless ``alpha`` is given; t(beta) by ``t_of_beta`` if given, else
    by a vectorised safeguarded Newton iteration in ln t on ln beta (exact in one step for a power law),
    inside a bracket from a table on a 4097-point grid, with bisection whenever Newton leaves the
    bracket; it stops at a relative change of 1e-15 in t. Checked at construction on that grid:
    beta(0) = 0, beta finite and strictly increasing, alpha finite and >= 0 (ValueError naming ``beta``).
    Write beta with expm1 / log1p where it is a small difference (e.g. ``torch.expm1(c * t)``), so that
    lambda = ln(beta)/2 stays accurate near t = 0.
    """

    def __init__(self, beta: Callable[[Tensor], Tensor], alpha: Callable[[Tensor], Tensor] | None = None,
                 t_of_beta: Callable[[Tensor], Tensor] | None = None, name: str = "beta"):
        if not callable(beta):
            raise ValueError(f"{name} must be an AccuracySchedule or a callable t -> beta(t), got {beta!r}")
        self._fn, self._alpha_fn, self._inv_fn, self._name = beta, alpha, t_of_beta, name
        grid = torch.linspace(0, 1, CHECK_POINTS, dtype=torch.float64)
        try:
            b = self._eval(grid)
            a = self._rate(grid)
        except ValueError:
            raise
        except Exception as exc:   # the callable failed on a float64 tensor
            raise ValueError(f"{name} must map a float64 tensor of times elementwise to beta(t) with torch "
                             f"operations (autograd gives alpha); calling it failed: {exc!r}") from exc
        if not bool(torch.isfinite(b).all()):
            bad = grid[~torch.isfinite(b)][0].item()
            raise ValueError(f"{name} must be finite on [0, 1], got beta({bad:g}) = {b[~torch.isfinite(b)][0].item()}")
        if b[0].item() != 0.0:
            raise ValueError(f"{name} must satisfy beta(0) = 0 (the prior carries no information), got beta(0) = {b[0].item()!r}")
        if not bool((b[1:] > b[:-1]).all()):
            i = int(torch.nonzero(b[1:] <= b[:-1])[0])
            raise ValueError(f"{name} must be strictly increasing on [0, 1], but beta({grid[i + 1].item():g}) = "
                             f"{b[i + 1].item():g} <= beta({grid[i].item():g}) = {b[i].item():g}")
        if not bool((torch.isfinite(a) & (a >= 0)).all()):
            i = int(torch.nonzero(~(torch.isfinite(a) & (a >= 0)))[0])
            raise ValueError(f"{name}: alpha = d beta/dt must be finite and >= 0 on [0, 1], got alpha({grid[i].item():g}) "
                             f"= {a[i].item()}")
        self._grid, self._table = grid, b
        self._beta_1 = b[-1].item()
        if alpha is not None:   # a given rate must be the derivative: central differences of the table
            fd = (b[2:] - b[:-2]) / (grid[2:] - grid[:-2])
            if not bool(((a[1:-1] - fd).abs() <= 1e-3 * fd.abs() + 1e-9 * self._beta_1).all()):
                raise ValueError(f"alpha must be d beta/dt of {name}: it differs from the central differences of beta "
                                 f"on a {CHECK_POINTS}-point grid by more than 1e-3 relative")
        if t_of_beta is not None:
            back = t_of_beta(b)
            if not (isinstance(back, Tensor) and back.shape == b.shape
                    and bool(((back.to(torch.float64) - grid).abs() <= 1e-9).all())):
                raise ValueError(f"t_of_beta must invert {name}: t_of_beta(beta(t)) differs from t by more than 1e-9 "
                                 f"on a {CHECK_POINTS}-point grid")

    def __repr__(self) -> str:
        return f"CallableSchedule({getattr(self._fn, '__name__', type(self._fn).__name__)}, beta(1)={self._beta_1:g})"

    def _eval(self, t: Tensor) -> Tensor:
        out = self._fn(t)
        if not isinstance(out, Tensor) or out.shape != t.shape:
            raise ValueError(f"{self._name} must return a tensor shaped like its input {tuple(t.shape)} "
                             f"(elementwise), got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
        return out.to(torch.float64)

    def _rate(self, t: Tensor) -> Tensor:
        if self._alpha_fn is not None:
            out = self._alpha_fn(t)
            if not isinstance(out, Tensor) or out.shape != t.shape:
                raise ValueError(f"alpha (the rate of {self._name}) must return a tensor shaped like its input")
            return out.to(torch.float64)
        with torch.enable_grad():
            tt = t.detach().clone().requires_grad_(True)
            b = self._fn(tt)
            if not (isinstance(b, Tensor) and b.requires_grad):
                raise ValueError(f"{self._name} must be built from torch operations on its argument, so that "
                                 f"autograd gives alpha = d beta/dt (or pass alpha=)")
            (grad,) = torch.autograd.grad(b.sum(), tt)
        return grad.to(torch.float64)

    def beta(self, t):
        t = _as_tensor(t)
        return self._eval(t.to(torch.float64)).to(t.dtype)

    def alpha(self, t):
        t = _as_tensor(t)
        return self._rate(t.to(torch.float64)).to(t.dtype)

    @property
    def beta_1(self) -> float:
        return self._beta_1

    def t_of_beta(self, b):
        b = _as_tensor(b)
        b64 = b.detach().to(torch.float64)
        if self._inv_fn is not None:
            return self._inv_fn(b64).to(b.dtype)
        return self._solve(torch.log(b64), b64).to(b.dtype)

    def t_of_log_beta(self, log_b):
        """Solved in ln beta directly: no underflow of e^(ln beta) for very negative ln beta."""
        log_b = _as_tensor(log_b)
        if self._inv_fn is not None:
            return super().t_of_log_beta(log_b)
        lb64 = log_b.detach().to(torch.float64)
        return self._solve(lb64, torch.exp(lb64)).to(log_b.dtype)

    def _beta_and_rate(self, t: Tensor) -> tuple[Tensor, Tensor]:
        if self._alpha_fn is not None:
            return self._eval(t), self._rate(t)
        with torch.enable_grad():
            tt = t.detach().clone().requires_grad_(True)
            b = self._fn(tt)
            (grad,) = torch.autograd.grad(b.sum(), tt)
        return b.detach().to(torch.float64), grad.to(torch.float64)

    def _solve(self, log_b: Tensor, b: Tensor, max_iter: int = 200) -> Tensor:
        """t with ln beta(t) = log_b: Newton in ln t, safeguarded by a shrinking bracket [lo, hi]."""
        shape = log_b.shape
        log_b, b = log_b.reshape(-1), b.reshape(-1)
        grid, table = self._grid.to(b.device), self._table.to(b.device)
        invalid = torch.isnan(log_b) | (b < 0)
        if bool(invalid.any()):
            raise ValueError(f"t_of_beta: beta must be a number >= 0, got {b[invalid][0].item()}")
        if bool((b > self._beta_1 * (1 + 1e-10)).any()):
            raise ValueError(f"t_of_beta: beta must lie in [0, beta(1) = {self._beta_1:g}], got {b.max().item():g}")
        top = b >= self._beta_1                       # round-off above beta(1): t = 1
        b = torch.where(top, torch.full_like(b, self._beta_1), b)
        log_b = torch.where(top, torch.full_like(log_b, math.log(self._beta_1)), log_b)
        j = torch.searchsorted(table, b, right=True).clamp(1, len(grid) - 1)
        lo, hi, b_lo, b_hi = grid[j - 1], grid[j], table[j - 1], table[j]
        on_grid = (b == b_lo) | (b == b_hi)
        exact = torch.where(b == b_lo, lo, hi)
        t = lo + (hi - lo) * ((b - b_lo) / (b_hi - b_lo)).clamp(0, 1)   # linear interpolation in the table
        t = torch.where((t > lo) & (t < hi), t, 0.5 * (lo + hi))
        done = on_grid.clone()
        for _ in range(max_iter):
            if bool(done.all()):
                break
            bt, at = self._beta_and_rate(t)
            lbt = torch.log(bt)
            above = lbt > log_b
            hi = torch.where(above & ~done, t, hi)
            lo = torch.where(~above & ~done, t, lo)
            # Newton in ln t on ln beta: d ln beta / d ln t = t alpha / beta
            newton = t * torch.exp(-(lbt - log_b) * bt / (t * at))
            finite = torch.isfinite(newton)
            small = finite & ((newton - t).abs() <= 1e-15 * t)
            inside = finite & (newton > lo) & (newton < hi)
            t_new = torch.where(inside | small, newton, 0.5 * (lo + hi))
            t = torch.where(done, t, t_new)
            done = done | small | ((hi - lo) <= 1e-15 * hi)
        return torch.where(on_grid, exact, t).reshape(shape)


def make_schedule(beta: "AccuracySchedule | Callable[[Tensor], Tensor]", name: str = "beta") -> AccuracySchedule:
    """A schedule object as given, or a :class:`CallableSchedule` around a callable."""
    if isinstance(beta, AccuracySchedule):
        return beta
    if callable(beta):
        return CallableSchedule(beta, name=name)
    raise ValueError(f"{name} must be an AccuracySchedule or a callable t -> beta(t), got {beta!r}")


def schedule_from(param: float | None, beta: "AccuracySchedule | Callable[[Tensor], Tensor] | None", param_name: str,
                  graves: Callable[[float], AccuracySchedule]) -> AccuracySchedule:
    """The schedule of a process given either its Graves parameter (sigma_1 or beta_1) or ``beta=``."""
    if beta is None:
        if param is None:
            raise ValueError(f"give {param_name} or beta= (an AccuracySchedule or a callable t -> beta(t))")
        return graves(param)
    if param is not None:
        raise ValueError(f"give either {param_name} or beta=, not both (got {param_name}={param!r}, beta={beta!r})")
    return make_schedule(beta)
