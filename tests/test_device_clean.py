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
