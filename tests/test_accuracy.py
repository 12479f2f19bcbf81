"""Accuracy schedules: closed forms vs independent derivations (mpmath, autograd, float64 bisection),
the generic (callable) path vs the closed forms, processes on any schedule, the equivalence of a
discrete schedule with beta_1 t^2 in the natural time u, and the errors on bad schedules."""
import math

import numpy as np
import pytest
import torch

from bfnsolvers import ContinuousBFN, DiscreteBFN, DiscretisedBFN
from bfnsolvers.denoiser import Denoiser
from bfnsolvers.oracles import MarkovChainOracle
from bfnsolvers.processes.accuracy import (AccuracySchedule, CallableSchedule, ChemBFNDiscrete, GravesContinuous,
                                           GravesDiscrete)
from bfnsolvers.schedules import uniform_t
from bfnsolvers.solvers import SOLVERS
from helpers import assert_adams_t_order_2_is_published, rel_err
from problems import gmm_oracle

mp = pytest.importorskip("mpmath")
mp.mp.dps = 40

T = torch.cat([torch.logspace(-9, 0, 200, dtype=torch.float64), torch.linspace(1e-3, 1, 200, dtype=torch.float64)])
T_MP = [0.0, 1e-9, 1e-5, 0.01, 0.1, 0.37, 0.5, 0.9, 0.999, 1.0]

# each built-in with its schedule as a literal mpmath expression (the published form, not our rewriting)
BUILTINS = [
    (GravesContinuous(1e-3), lambda t: mp.mpf(1e-3) ** (-2 * t) - 1),
    (GravesContinuous(math.sqrt(1e-3)), lambda t: mp.sqrt(mp.mpf(1e-3)) ** (-2 * t) - 1),
    (GravesDiscrete(0.5625), lambda t: mp.mpf(0.5625) * t ** 2),
    (GravesDiscrete(9.0), lambda t: 9 * t ** 2),
    (ChemBFNDiscrete(0.5625, 27), lambda t: -4 * mp.log(1 - t + t * mp.exp(-27 * mp.mpf(0.5625) / 4)) / 27),
    (ChemBFNDiscrete(3.0, 2), lambda t: -4 * mp.log(1 - t + t * mp.exp(-2 * mp.mpf(3.0) / 4)) / 2),
    (ChemBFNDiscrete(0.2, 512), lambda t: -4 * mp.log(1 - t + t * mp.exp(-512 * mp.mpf(0.2) / 4)) / 512),
]
IDS = [repr(s) for s, _ in BUILTINS]


def rel(a: float, b: float) -> float:
    """Relative difference, with an absolute floor of 1e-20 (mpmath's one-sided derivative of t^2 at t = 0 is ~1e-43)."""
    return rel_err(a, b, floor=1e-20)


@pytest.mark.parametrize("schedule,exact", BUILTINS, ids=IDS)
def test_builtin_beta_alpha_inverse_vs_mpmath(schedule, exact):
    """beta, alpha = d beta/dt (mpmath.diff) and t(beta) (mpmath.findroot) at 40 digits."""
    for t in T_MP:
        tm = mp.mpf(t)
        b, a = exact(tm), mp.diff(exact, tm) if 0 < t < 1 else mp.diff(exact, tm, direction=1 if t == 0 else -1)
        assert rel(schedule.beta(t).item(), float(b)) < 1e-14, ("beta", t)
        assert rel(schedule.alpha(t).item(), float(a)) < 1e-13, ("alpha", t)
        if t > 0:
            root = mp.findroot(lambda x: exact(x) - b, (tm / 2, min(mp.mpf(1), 2 * tm)), solver="anderson",
                               tol=mp.mpf(10) ** -60)
            assert rel(schedule.t_of_beta(torch.tensor(float(b), dtype=torch.float64)).item(), float(root)) < 1e-13
    assert schedule.beta_1 == pytest.approx(float(exact(mp.mpf(1))), rel=1e-14)


@pytest.mark.parametrize("schedule,exact", BUILTINS, ids=IDS)
def test_builtin_alpha_is_the_autograd_derivative_and_inverse_round_trips(schedule, exact):
    t = T.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(schedule.beta(t).sum(), t)
    torch.testing.assert_close(schedule.alpha(T), grad, rtol=1e-13, atol=0)
    torch.testing.assert_close(schedule.t_of_beta(schedule.beta(T)), T, rtol=1e-12, atol=0)
    torch.testing.assert_close(schedule.t_of_log_beta(schedule.log_beta(T)), T, rtol=1e-12, atol=0)
    torch.testing.assert_close(schedule.t_of_natural_time(schedule.natural_time(T)), T, rtol=1e-12, atol=0)


@pytest.mark.parametrize("schedule,exact", BUILTINS, ids=IDS)
def test_builtin_closed_forms_equal_the_generic_forms(schedule, exact):
    """Each override (expm1, sigma_1^(2t), 2/t, u = t, ...) against the base-class definition."""
    for name in ("log_beta", "log_beta_rate", "gamma", "one_minus_gamma", "gamma_rate", "natural_time"):
        torch.testing.assert_close(getattr(schedule, name)(T), getattr(AccuracySchedule, name)(schedule, T),
                                   rtol=1e-12, atol=0, msg=name)
    lb = schedule.log_beta(T)
    torch.testing.assert_close(schedule.t_of_log_beta(lb), AccuracySchedule.t_of_log_beta(schedule, lb), rtol=1e-12, atol=0)


def _bisect(fn, b: float) -> float:
    """Plain float64 bisection on [0, 1], 200 halvings (independent of the Newton solver)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if fn(torch.tensor(mid, dtype=torch.float64)).item() < b:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


C_CHEM = -math.expm1(-27 * 0.5625 / 4)
CALLABLES = {
    "power 1.7": lambda t: 0.5625 * t ** 1.7,
    "expm1(c t^1.5)": lambda t: torch.expm1(math.log(1e6) * t ** 1.5),
    "ChemBFN": lambda t: -4 / 27 * torch.log1p(-C_CHEM * t),
    "wiggly": lambda t: t + 0.12 * torch.sin(2 * math.pi * t) / (2 * math.pi) + 3 * t ** 3,
    "graves": lambda t: torch.expm1(-2 * math.log(1e-3) * t),
}


@pytest.mark.parametrize("name", CALLABLES)
def test_callable_schedule_inverse_and_alpha(name):
    fn = CALLABLES[name]
    s = CallableSchedule(fn)
    torch.testing.assert_close(s.beta(T), fn(T), rtol=0, atol=0)
    # inverse: round trip to 1e-12 relative, and against plain bisection
    torch.testing.assert_close(s.t_of_beta(s.beta(T)), T, rtol=1e-12, atol=0)
    torch.testing.assert_close(s.t_of_log_beta(torch.log(fn(T))), T, rtol=1e-12, atol=0)
    for t in (1e-4, 0.013, 0.3, 0.77, 1.0):
        b = fn(torch.tensor(t, dtype=torch.float64)).item()
        assert abs(s.t_of_beta(torch.tensor(b, dtype=torch.float64)).item() - _bisect(fn, b)) < 1e-12, t
    # alpha by autograd vs a float64 central difference (h = 1e-6: error ~ 1e-10 relative)
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    fd = (fn(t + 1e-6) - fn(t - 1e-6)) / 2e-6
    torch.testing.assert_close(s.alpha(t), fd, rtol=1e-7, atol=0)
    # dtypes follow the input; shapes too
    t32 = torch.rand(3, 4, dtype=torch.float32)
    for method in (s.beta, s.alpha, s.natural_time, s.gamma):
        out = method(t32)
        assert out.dtype == torch.float32 and out.shape == (3, 4)
    assert s.t_of_beta(s.beta(torch.tensor(0.5))).dtype == torch.float32
    assert s.t_of_beta(torch.tensor(0.0, dtype=torch.float64)).item() == 0.0


def test_callable_schedule_inverse_where_alpha_vanishes():
    """beta = (t - 1/2)^3 + 1/8 has alpha(1/2) = 0: Newton fails there, the bisection safeguard converges."""
    fn = lambda t: (t - 0.5) ** 3 + 0.125   # noqa: E731
    s = CallableSchedule(fn)
    t = torch.linspace(0.05, 1, 400, dtype=torch.float64)
    b = fn(t)
    torch.testing.assert_close(s.beta(s.t_of_beta(b)), b, rtol=1e-14, atol=1e-16)
    assert s.t_of_beta(torch.tensor(0.125, dtype=torch.float64)).item() == pytest.approx(0.5, abs=2e-5)


def test_callable_schedule_uses_given_alpha_and_inverse():
    calls = []
    s = CallableSchedule(lambda t: 2 * t ** 2, alpha=lambda t: calls.append("a") or 4 * t,
                         t_of_beta=lambda b: calls.append("i") or (b / 2).sqrt())
    assert s.alpha(torch.tensor(0.25)).item() == 1.0 and s.t_of_beta(torch.tensor(0.5)).item() == 0.5
    assert "a" in calls and "i" in calls
    with pytest.raises(ValueError, match="alpha must be d beta/dt"):
        CallableSchedule(lambda t: 2 * t ** 2, alpha=lambda t: 2 * t)
    with pytest.raises(ValueError, match="t_of_beta must invert"):
        CallableSchedule(lambda t: 2 * t ** 2, t_of_beta=lambda b: b / 2)


# ---------------------------------------------------------------------------- processes


def _methods(process, t):
    out = {name: getattr(process, name)(t) for name in ("beta", "alpha", "a", "s", "lam", "sde_f", "sde_g2")}
    out["t_of_lam"] = process.t_of_lam(process.lam(t))
    out["steps"] = process.n_step_accuracies(17)
    z = torch.linspace(-1, 1, t.numel(), dtype=torch.float64)
    out["natural"] = process.natural(z, 0.3)
    out["from_natural"] = process.from_natural(z, 0.3)
    if hasattr(process, "noise_ratio"):
        out["noise_ratio"] = torch.stack(process.noise_ratio(t, torch.float64))
    if hasattr(process, "natural_time"):
        out["natural_time"] = process.natural_time(t)
    return out


PAIRS = [
    (ContinuousBFN(1e-3), ContinuousBFN(beta=CALLABLES["graves"])),
    (DiscretisedBFN(1e-3, 16), DiscretisedBFN(beta=GravesContinuous(1e-3), num_bins=16)),
    (DiscreteBFN(0.5625, 27), DiscreteBFN(beta=lambda t: 0.5625 * t ** 2, num_classes=27)),
    (DiscreteBFN(beta=ChemBFNDiscrete(0.5625, 27), num_classes=27), DiscreteBFN(beta=CALLABLES["ChemBFN"], num_classes=27)),
]


@pytest.mark.parametrize("closed,generic", PAIRS, ids=lambda p: repr(p))
def test_generic_path_matches_closed_forms(closed, generic):
    """A process on a callable schedule (autograd alpha, Newton inverse, generic gamma, 1 - gamma = 1/(1 + beta))
    gives the closed-form process's coefficients to float64 round-off."""
    t = torch.cat([torch.logspace(-8, 0, 100, dtype=torch.float64), torch.linspace(0, 1, 101, dtype=torch.float64)])
    a, b = _methods(closed, t), _methods(generic, t)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-10, atol=0, msg=name)


SCHEDULED = [ContinuousBFN(beta=CALLABLES["expm1(c t^1.5)"]), ContinuousBFN(beta=CALLABLES["wiggly"]),
             DiscretisedBFN(beta=CALLABLES["power 1.7"], num_bins=8),
             DiscreteBFN(beta=ChemBFNDiscrete(0.5625, 27), num_classes=27), DiscreteBFN(beta=CALLABLES["wiggly"], num_classes=5)]


@pytest.mark.parametrize("process", SCHEDULED, ids=repr)
def test_process_coefficients_follow_from_the_definitions(process):
    """lambda = ln(a/s); f = d ln a / ds, g^2 = d(s^2)/ds - 2 f s^2 (s = 1 - t) by autograd through a and s
    (autograd of ln gamma cancels two terms ~alpha/(1+beta) near t = 1: hence atol 1e-13);
    lambda inverse; s/a from noise_ratio; u = sqrt(beta/beta(1)) and beta = beta(1) u^2."""
    t = torch.linspace(0.01, 1, 100, dtype=torch.float64).requires_grad_(True)
    a, s2 = process.a(t), process.s(t) ** 2
    (dlna,) = torch.autograd.grad(torch.log(a).sum(), t)
    (ds2,) = torch.autograd.grad(s2.sum(), t)
    t = t.detach()
    f = -dlna
    torch.testing.assert_close(process.sde_f(t), f, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(process.sde_g2(t), -ds2 - 2 * f * s2.detach(), rtol=1e-9, atol=1e-13)
    torch.testing.assert_close(process.lam(t), torch.log(process.a(t) / process.s(t)), rtol=1e-12, atol=1e-14)
    tt = torch.cat([torch.logspace(-9, 0, 300, dtype=torch.float64), torch.linspace(1e-3, 1, 300, dtype=torch.float64)])
    torch.testing.assert_close(process.t_of_lam(process.lam(tt)), tt, rtol=1e-11, atol=0)
    lam = process.lam(torch.linspace(1e-6, 1, 1000, dtype=torch.float64))
    assert bool((lam[1:] > lam[:-1]).all())
    for dtype in (torch.float32, torch.float64):
        grid = torch.linspace(0, 1, 1001, dtype=dtype)
        for name in ("beta", "alpha", "a", "s", "lam", "sde_f", "sde_g2"):
            assert torch.isfinite(getattr(process, name)(grid)).all(), (name, dtype)
    assert process.n_step_accuracies(13).sum().item() == pytest.approx(process.beta(1.0).item(), rel=1e-12)
    if isinstance(process, ContinuousBFN):
        gamma, ratio = process.noise_ratio(t, torch.float64)
        torch.testing.assert_close(gamma, process.a(t), rtol=1e-14, atol=0)
        torch.testing.assert_close(ratio, process.s(t) / process.a(t), rtol=1e-13, atol=0)
        torch.testing.assert_close(ratio, process.beta(t) ** -0.5, rtol=1e-13, atol=0)   # sqrt((1-gamma)/gamma)
        assert not hasattr(process, "sigma_1")
    else:
        u = process.natural_time(t)
        torch.testing.assert_close(process.beta_ref * u ** 2, process.beta(t), rtol=1e-14, atol=0)
        torch.testing.assert_close(process.t_of_natural_time(u), t, rtol=1e-12, atol=0)
        assert process.natural_time(1.0).item() == pytest.approx(1.0, rel=1e-15)
        assert not hasattr(process, "beta_1")


@pytest.mark.parametrize("process", [ContinuousBFN(beta=CALLABLES["expm1(c t^1.5)"]),
                                     DiscreteBFN(beta=ChemBFNDiscrete(3.0, 3), num_classes=3)], ids=repr)
def test_bayesian_updates_match_flow_on_any_schedule(process):
    """n Bayesian updates with step accuracies beta(t_i) - beta(t_{i-1}) reach the flow marginal N(a x0, s^2)."""
    g = torch.Generator().manual_seed(4)
    n = 20000
    ts = torch.tensor([0.0, 0.1, 0.35, 0.6], dtype=torch.float64)
    if isinstance(process, ContinuousBFN):
        x = torch.tensor([0.7, -0.3], dtype=torch.float64).expand(n, 2)
    else:
        x = torch.tensor([2, 0]).expand(n, 2)
    x0 = process.to_x0(x).double()
    z = torch.zeros_like(x0)
    for i in range(len(ts) - 1):
        z = process.bayes_step(z, x0, ts[i], ts[i + 1], torch.randn(z.shape, generator=g, dtype=torch.float64))
    mean, var = process.a(ts[-1]) * x0[0], process.s(ts[-1]) ** 2
    zz, mm = z.reshape(n, -1), mean.flatten()
    assert ((zz.mean(0) - mm).abs() <= 5 * (var / n).sqrt()).all()
    assert ((zz.var(0) - var).abs() <= 5 * var * math.sqrt(2 / (n - 1))).all()


# ---------------------------------------------------------------------------- equivalence in re-mapped time


def _run(solver, process, oracle, z0, ts, noises):
    it = iter(noises)
    options = {"noise_sampler": lambda z: next(it)} if SOLVERS[solver].stochastic else {}
    if solver == "bfn":
        options["generator"] = torch.Generator().manual_seed(11)
    states = []
    z = SOLVERS[solver](Denoiser(oracle, process), z0.clone(), ts, callback=lambda info: states.append(info["z"]), **options)
    return states + [z]


DISCRETE_SOLVERS = [n for n, s in SOLVERS.items() if "discrete" in s.data and n not in ("euler", "euler-maruyama", "reference")]
CONTINUOUS_SOLVERS = [n for n, s in SOLVERS.items() if "continuous" in s.data and n not in ("euler", "euler-maruyama", "reference")]


class TimeAwareMarkov:
    """The Markov oracle's logits plus tanh(lambda(t)) v: a model that depends on the time through the
    process (the exact posterior does not), so calling it at the wrong time (e.g. u for t) shows."""

    output_type = "logits"

    def __init__(self, process):
        trans = torch.rand(5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.1
        self.oracle, self.process = MarkovChainOracle(process, torch.ones(5), trans, 6), process
        self.v = torch.linspace(-0.5, 0.5, 5, dtype=torch.float64)

    def __call__(self, theta, t):
        lam = self.process.lam(torch.as_tensor(t, dtype=torch.float64))
        lam = lam.reshape(-1, 1, 1) if lam.dim() else lam
        return self.oracle(theta, t) + torch.tanh(lam) * self.v


def _markov(process):
    return TimeAwareMarkov(process)


@pytest.mark.parametrize("solver", DISCRETE_SOLVERS)
def test_chembfn_schedule_is_beta_1_t2_in_natural_time(solver):
    """A DiscreteBFN on ChemBFN's schedule with grid ts gives, for the same start state and noise, the states
    of DiscreteBFN(beta_ref) (beta_ref t^2) on the grid u(ts) = sqrt(beta(ts)/beta_ref), float64, 1e-10."""
    chem = DiscreteBFN(beta=ChemBFNDiscrete(1.5, 5), num_classes=5)
    graves = DiscreteBFN(chem.beta_ref, 5)
    ts = uniform_t(12, 1e-3)
    us = chem.natural_time(ts)
    assert not torch.allclose(us, ts, rtol=1e-2)       # a real re-mapping, not the identity
    z0 = chem.prior_state((9, 6, 5), ts[0], torch.Generator().manual_seed(0), torch.float64)
    noises = [torch.randn(z0.shape, generator=torch.Generator().manual_seed(100 + i), dtype=torch.float64) for i in range(12)]
    ours = _run(solver, chem, _markov(chem), z0, ts, noises)
    ref = _run(solver, graves, _markov(graves), z0, us, noises)
    err = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(ours, ref))
    print(f"\n{solver}: max relative state difference {err:.1e}")
    assert len(ours) == len(ref) and err < 1e-10


def _gmm(process):
    return gmm_oracle(process)


@pytest.mark.parametrize("solver", CONTINUOUS_SOLVERS)
def test_continuous_schedule_is_the_graves_process_in_remapped_time(solver):
    """A ContinuousBFN on beta(t) = exp(c t^1.5) - 1 with grid ts is ContinuousBFN(sigma_1) on the grid
    tau(ts) = ln(1 + beta(ts)) / (-2 ln sigma_1) (same beta), for the same start and noise: float64, 1e-10."""
    ours_p = ContinuousBFN(beta=CALLABLES["expm1(c t^1.5)"], x_range=None)
    graves = ContinuousBFN(1e-3, x_range=None)
    ts = torch.cat([torch.zeros(1, dtype=torch.float64), uniform_t(10, 0.05)]) if solver == "bfn" else uniform_t(10, 0.05)
    taus = graves.schedule.t_of_beta(ours_p.beta(ts))
    z0 = ours_p.prior_state((16, 2), ts[0], torch.Generator().manual_seed(0), torch.float64)
    noises = [torch.randn(z0.shape, generator=torch.Generator().manual_seed(100 + i), dtype=torch.float64) for i in range(11)]
    ours = _run(solver, ours_p, _gmm(ours_p), z0, ts, noises)
    ref = _run(solver, graves, _gmm(graves), z0, taus, noises)
    scale = max(b.abs().max().item() for b in ref)
    err = max((a - b).abs().max().item() for a, b in zip(ours, ref)) / scale
    print(f"\n{solver}: max relative state difference {err:.1e}")
    assert err < 1e-10


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn,match", [
    (lambda t: t * (1 - t), "strictly increasing"),
    (lambda t: 1 / (1 - t) - 1, "finite"),
    (lambda t: t + 0.1, r"beta\(0\) = 0"),
    (lambda t: t.sum() * 0 + t.mean(), "shaped like"),
    (lambda t: torch.as_tensor(np.asarray(t) ** 2), "torch operations"),
    (lambda t: t ** 0.5, "alpha"),
    (lambda t: torch.where(t < 0.5, t, t - 0.7), "strictly increasing"),
], ids=["decreasing", "infinite", "beta0", "shape", "numpy", "alpha-inf", "jump-down"])
def test_bad_callables_raise_value_errors_naming_beta(fn, match):
    for make in (lambda: ContinuousBFN(beta=fn), lambda: DiscreteBFN(beta=fn, num_classes=3),
                 lambda: DiscretisedBFN(beta=fn, num_bins=4)):
        with pytest.raises(ValueError, match=match) as info:
            make()
        assert "beta" in str(info.value)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="beta"):
        ContinuousBFN(beta=3.0)
    with pytest.raises(ValueError, match="sigma_1 or beta"):
        ContinuousBFN()
    with pytest.raises(ValueError, match="not both"):
        ContinuousBFN(1e-3, beta=GravesContinuous(1e-3))
    with pytest.raises(ValueError, match="not both"):
        DiscreteBFN(1.0, 3, beta=lambda t: t ** 2)
    with pytest.raises(ValueError, match="beta_1 or beta"):
        DiscreteBFN(num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        DiscreteBFN(beta=ChemBFNDiscrete(1.0, 4), num_classes=5)
    with pytest.raises(ValueError, match="num_bins"):
        DiscretisedBFN(beta=lambda t: t)
    with pytest.raises(ValueError, match="beta_1"):
        ChemBFNDiscrete(-1.0, 3)
    with pytest.raises(ValueError, match="num_classes"):
        ChemBFNDiscrete(1.0, 1)
    with pytest.raises(ValueError, match="sigma_1"):
        GravesContinuous(1.0)
    s = CallableSchedule(lambda t: 2 * t)
    with pytest.raises(ValueError, match=r"beta\(1\)"):
        s.t_of_beta(torch.tensor(2.5, dtype=torch.float64))
    with pytest.raises(ValueError, match=">= 0"):
        s.t_of_beta(torch.tensor(-0.5, dtype=torch.float64))


def test_graves_processes_keep_their_parameters_and_repr():
    assert ContinuousBFN(1e-3).sigma_1 == 1e-3 and repr(ContinuousBFN(1e-3)) == "ContinuousBFN(sigma_1=0.001)"
    assert DiscreteBFN(0.5625, 27).beta_1 == 0.5625 and DiscreteBFN(0.5625, 27).beta_ref == 0.5625
    assert repr(DiscretisedBFN(0.01, 16)) == "DiscretisedBFN(sigma_1=0.01, num_bins=16)"
    assert "ChemBFNDiscrete" in repr(DiscreteBFN(beta=ChemBFNDiscrete(1.0, 4), num_classes=4))
    chem = DiscreteBFN(beta=ChemBFNDiscrete(1.0, 4), num_classes=4)
    assert chem.beta_ref == pytest.approx(1.0, rel=1e-15)   # beta(1) = beta_1 for ChemBFN's schedule


@pytest.mark.parametrize("stochastic", [False, True])
def test_adams_t_order_2_is_the_published_solver_on_chembfn(stochastic):
    """On a non-default schedule too (Gauss-Legendre weights in u vs the closed forms in s = 1 - u)."""
    process = DiscreteBFN(beta=ChemBFNDiscrete(1.5, 5), num_classes=5)
    assert_adams_t_order_2_is_published(Denoiser(TimeAwareMarkov(process), process), (7, 6, 5), stochastic)
