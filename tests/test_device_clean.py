"""The solvers' per-step path is device-clean: run on the ``meta`` device (tensors without data), any host
read of a state-sized or device tensor (``.item()``, ``bool()``, ``.cpu()``, ``.tolist()``) raises, and any
tensor made on the CPU and mixed with the state (other than a 0-dim scalar) fails the op. So a solver loop
that completes on meta reads nothing from the device per step.

``sample()`` itself reads the first call's finiteness and the final flags once per run (a sync per run, not
per step); the Denoiser's first-call check is the only per-run read inside the loop, and the test starts the
count past it (``nfe = 1``) to cover the steps themselves."""
from __future__ import annotations

import pytest
import torch

from bfnsolvers import ContinuousBFN, DiscreteBFN, DiscretisedBFN
from bfnsolvers.denoiser import Denoiser
from bfnsolvers.sampling import build_grid
from bfnsolvers.solvers import SOLVERS

#: Solvers that cannot run on meta, and why.
NOT_ON_META = {
    # adaptive dopri5: its step-size control reads the error norm on the host at every step by design
    "reference": "adaptive step control reads the local error on the host",
}

PROCESSES = {
    "continuous": (lambda: ContinuousBFN(sigma_1=0.02), (2, 3, 4), ()),
    "discretised": (lambda: DiscretisedBFN(sigma_1=0.02, num_bins=16), (2, 3, 4), (2,)),
    "discrete": (lambda: DiscreteBFN(beta_1=3.0, num_classes=5), (2, 3), ()),
}


class MetaNet(torch.nn.Module):
    """A network whose parameters live on meta; its output depends on its inputs (and t)."""

    def __init__(self, extra: tuple[int, ...]):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones((), device="meta"))
        self.extra = extra

    def forward(self, x, t):
        out = torch.tanh(x * self.w) * (1 + t.reshape(-1, *[1] * (x.dim() - 1)))
        return out.unsqueeze(-1).expand(*out.shape, *self.extra) if self.extra else out


CASES = [(name, kind) for name, spec in SOLVERS.items() for kind in PROCESSES if kind in spec.data]


def _dense_discretised(mu_x, sigma_x, num_bins, *, mean=True, sample=False, mode=False, u=None, **_):
    """The materialising reference of the discretised output distribution: the windowed torch path (the CPU
    backend) groups elements by erf window width on the host (data-dependent shapes, a read by design; on
    CUDA the Triton kernel runs instead), so on meta the solver loops run with this one."""
    from bfnsolvers.kernels.reference import discretised_gaussian_ref
    out = discretised_gaussian_ref(mu_x, sigma_x, num_bins, u=u, want_mode=mode)
    return type(out)(out.mean if mean else None, out.sample, out.mode)


@pytest.mark.parametrize("name,kind", CASES)
def test_solver_loop_runs_on_meta(name, kind, monkeypatch):
    spec = SOLVERS[name]
    if name in NOT_ON_META:
        pytest.skip(NOT_ON_META[name])
    if kind == "discretised":
        from bfnsolvers import distributions
        monkeypatch.setattr(distributions.kernels, "discretised_gaussian", _dense_discretised)
    make, shape, extra = PROCESSES[kind]
    process = make()
    denoiser = Denoiser(MetaNet(extra), process)
    denoiser.nfe = 1                                  # past the first call's one-off finiteness read
    ts = build_grid(process, spec, 6, "uniform", 0.0 if spec.from_prior else 0.05,
                    "state")
    z = torch.zeros(process.state_shape(shape), device="meta")
    out = spec(denoiser, z, ts)
    assert out.device.type == "meta" and out.shape == z.shape and out.dtype == z.dtype
    assert denoiser.nfe - 1 == (len(ts) - 1) * spec.nfe_per_step


def test_meta_detects_a_host_read():
    """The check can fail: a loop that reads the state on the host raises on meta."""
    z = torch.zeros(3, device="meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool((z > 0).any())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (benchmarks/gpu.sh runs it on a GPU)")
@pytest.mark.parametrize("name,kind", CASES)
def test_solver_loop_does_not_sync_on_cuda(name, kind):
    """On CUDA, torch's sync debug mode raises at any synchronising call (item, bool, D2H and blocking H2D copies)."""
    spec = SOLVERS[name]
    if name in NOT_ON_META:
        pytest.skip(NOT_ON_META[name])
    make, shape, extra = PROCESSES[kind]
    process = make()
    net = MetaNet(extra)
    net.w = torch.nn.Parameter(torch.ones((), device="cuda"))
    denoiser = Denoiser(net, process)
    denoiser.nfe = 1
    ts = build_grid(process, spec, 6, "uniform", 0.0 if spec.from_prior else 0.05, "state")
    z = torch.zeros(process.state_shape(shape), device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0) if spec.stochastic else None
    options = {"generator": generator} if spec.stochastic else {}
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = spec(denoiser, z, ts, **options)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), torch.tensor(1.01, dtype=torch.float64)])
def test_host_times_are_still_checked(bad):
    """The per-step path checks a host time on the host (not on the device): out of [0, 1] still raises."""
    denoiser = Denoiser(lambda x, t: x, ContinuousBFN(sigma_1=0.02))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        denoiser(torch.zeros(2, 3), bad)


def test_t_below_t_min_still_gives_zero():
    """The t < t_min branch of the eps -> x map is kept where a time needs it (decided on the host value)."""
    process = ContinuousBFN(sigma_1=0.02)
    denoiser = Denoiser(lambda x, t: torch.ones_like(x), process)
    assert torch.equal(denoiser(torch.full((2, 3), 0.3), process.t_min / 2), torch.zeros(2, 3))
    assert not torch.equal(denoiser(torch.full((2, 3), 0.3), 0.5), torch.zeros(2, 3))


def _data_term_before(history, lam_next):
    """multistep_data_term as plain formulas (bfnsolvers/solvers/ode.py at e0f6d12, before its in-place temporaries)."""
    import math
    (l0, m0), k = history[0], len(history)
    h = lam_next - l0
    phi_1 = math.expm1(-h)
    if k == 1:
        return -phi_1 * m0
    l1, m1 = history[1]
    r0 = (l0 - l1) / h
    d1_0 = (m0 - m1) / r0
    if k == 2:
        return -phi_1 * (m0 + 0.5 * d1_0)
    l2, m2 = history[2]
    r1 = (l1 - l2) / h
    d1_1 = (m1 - m2) / r1
    d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
    d2 = (d1_0 - d1_1) / (r0 + r1)
    phi_2 = phi_1 / h + 1
    phi_3 = phi_2 / h - 0.5
    return -phi_1 * m0 + phi_2 * d1 - 2 * phi_3 * d2


def _corrector_before(history, lam_prev, m_prev, lam_now, m_now):
    import math
    h = lam_now - lam_prev
    phi_1 = math.expm1(-h)
    phi_2 = phi_1 / h + 1
    d_a = (m_now - m_prev) / h
    if not history:
        return -phi_1 * m_prev + phi_2 * h * d_a
    l_b, m_b = history[0]
    h0 = lam_prev - l_b
    c = (d_a - (m_prev - m_b) / h0) / (h + h0)
    phi_3 = phi_2 / h - 0.5
    return -phi_1 * m_prev + phi_2 * h * (d_a - c * h) - 2 * h * h * phi_3 * c


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (torch.float64, 1e-14)])
def test_fused_terms_are_the_plain_formulas(dtype, tol):
    """The in-place, alpha-fused data and corrector terms vs the plain formulas evaluated in float64 (to the
    dtype's rounding: same math, other rounding), leaving their inputs untouched."""
    from bfnsolvers.solvers.ode import corrector_term, multistep_data_term
    g = torch.Generator().manual_seed(0)
    ms = [torch.randn(4, 37, generator=g, dtype=dtype) for _ in range(4)]
    copies = [m.clone() for m in ms]
    m64 = [m.double() for m in ms]
    lams = [0.9, 0.4, -0.2, -1.1]
    for k in (1, 2, 3):
        hist, hist64 = list(zip(lams[1:1 + k], ms[1:1 + k])), list(zip(lams[1:1 + k], m64[1:1 + k]))
        torch.testing.assert_close(multistep_data_term(hist, lams[0]).double(), _data_term_before(hist64, lams[0]),
                                   rtol=0, atol=tol)
    for hist, hist64 in (([], []), ([(lams[3], ms[3])], [(lams[3], m64[3])])):
        torch.testing.assert_close(corrector_term(hist, lams[2], ms[2], lams[1], ms[1]).double(),
                                   _corrector_before(hist64, lams[2], m64[2], lams[1], m64[1]), rtol=0, atol=tol)
    assert all(torch.equal(m, c) for m, c in zip(ms, copies))      # the inputs are untouched


def test_grid_memo_follows_the_schedule_and_is_not_pickled():
    """The per-process memo of grid numbers (SDE coefficients, a grid time's noise ratio and host record) gives
    what a fresh computation gives, fresh lists per call, follows a replaced schedule, and is left out of a
    pickle or a copy."""
    import copy
    import pickle
    from bfnsolvers.processes.accuracy import GravesContinuous
    from bfnsolvers.solvers.common import sde_coefficients

    process = ContinuousBFN(sigma_1=0.02)
    ts = torch.linspace(0.05, 1.0, 7, dtype=torch.float64)
    first = sde_coefficients(process, ts)
    first[0][0] = -1.0                                     # a caller's list: not the memo's
    assert sde_coefficients(process, ts)[0] == process.a(ts).tolist()
    process.schedule = GravesContinuous(0.1)
    assert sde_coefficients(process, ts) == (process.a(ts).tolist(), process.s(ts).tolist(), process.lam(ts).tolist())
    denoiser = Denoiser(lambda x, t: torch.ones_like(x), process)
    z = torch.full((2, 3), 0.3)
    x1 = denoiser(z, 0.5)
    gamma, ratio = process.noise_ratio(torch.tensor(0.5), torch.float32)
    assert torch.equal(x1, (z / gamma - ratio * torch.ones_like(z)).clamp(-1, 1))
    process.schedule = GravesContinuous(0.02)
    gamma, ratio = process.noise_ratio(torch.tensor(0.5), torch.float32)
    assert torch.equal(denoiser(z, 0.5), (z / gamma - ratio * torch.ones_like(z)).clamp(-1, 1))
    assert process.memo() and "_memo" not in pickle.loads(pickle.dumps(process)).__dict__
    assert "_memo" not in copy.deepcopy(process).__dict__


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_in_place_readouts_keep_autograd(kind):
    """x0 from a network output is computed in place on fresh tensors only without autograd: with a gradient
    (training) it is the out-of-place formula, and its gradient is autograd's through that formula."""
    process = ContinuousBFN(sigma_1=0.02) if kind == "continuous" else DiscreteBFN(beta_1=3.0, num_classes=5)
    shape = (3, 4) if kind == "continuous" else (3, 4, 5)
    g = torch.Generator().manual_seed(0)
    z, out = torch.randn(shape, generator=g), torch.randn(shape, generator=g).requires_grad_()
    t = torch.full((3,), 0.4)
    x0 = process.dist_to_x0(process.output_distribution(out, z, t))
    if kind == "continuous":
        gamma, ratio = process.noise_ratio(t.reshape(-1, 1), torch.float32)
        want = (z / gamma - ratio * out).clamp(-1, 1)
    else:
        want = 5 * torch.softmax(out, -1) - 1
    torch.testing.assert_close(x0, want, rtol=0, atol=1e-6)
    weights = torch.randn(shape, generator=g)
    grad, = torch.autograd.grad((x0 * weights).sum(), out)
    want_grad, = torch.autograd.grad((want * weights).sum(), out)
    torch.testing.assert_close(grad, want_grad, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(process.dist_to_x0(process.output_distribution(out, z, t)), want, rtol=0, atol=1e-6)
