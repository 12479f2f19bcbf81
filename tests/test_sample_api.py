"""sample()'s contract: loud failures for bad input and bad models, exact NFE, grids as documented,
plain tensors out, per-sample generators (regression tests of the packaging issue's "Found" list)."""
import threading

import pytest
import torch

from bfnsolvers import ContinuousBFN, Denoiser, DiscreteBFN, load_checkpoint, sample
from bfnsolvers.oracles import oracle_problem
from bfnsolvers.processes import DiscretisedBFN

DISCRETE = DiscreteBFN(0.5625, 27)
CONT = ContinuousBFN(0.01)


def nan_model(th, t):
    return torch.full_like(th, float("nan"))


def inf_model(mu, t):
    return torch.full_like(mu, float("inf"))


# --- non-finite models and states -------------------------------------------------------------
def test_discrete_nan_model_raises_instead_of_zero_indices():
    with pytest.raises(FloatingPointError, match=r"nan_model.*first call.*t = "):
        sample(nan_model, DISCRETE, shape=(4, 32))


def test_continuous_inf_model_raises_instead_of_clipped_minus_one():
    with pytest.raises(FloatingPointError, match=r"inf_model.*ContinuousBFN"):
        sample(inf_model, CONT, shape=(4, 8))


def test_model_turning_nan_later_is_named_at_that_time():
    def late_nan(mu, t):
        return torch.where(t.view(-1, 1) > 0.5, torch.full_like(mu, float("nan")), torch.zeros_like(mu))

    with pytest.raises(FloatingPointError, match=r"late_nan.*call \d+ of \d+, t = 0\.[5-9]"):
        sample(late_nan, CONT, "bfn-solver++2", nfe=10, shape=(2, 3))


def test_nan_z_start_is_rejected():
    z = torch.full((2, 32, 27), float("nan"))
    with pytest.raises(ValueError, match="z_start"):
        sample(lambda th, t: torch.zeros_like(th), DISCRETE, z_start=z)


# --- schedules given as lists ------------------------------------------------------------------
def zero_model(mu, t):
    return torch.zeros_like(mu)


def test_list_schedule_nfe_must_match_what_it_spends():
    times = [0.01, 0.3, 0.6, 1.0]
    with pytest.raises(ValueError, match=r"nfe=10.*4 times.*spends 3 calls"):
        sample(zero_model, CONT, "bfn-solver++2", nfe=10, schedule=times, shape=(2, 3))
    _, info = sample(zero_model, CONT, "bfn-solver++2", schedule=times, shape=(2, 3))
    assert info.nfe == 3 and info.times.tolist() == times[:-1]          # drop: the last time is dropped, as documented
    _, info = sample(zero_model, CONT, "bfn-solver++2", schedule=times, final="denoise", shape=(2, 3))
    assert info.nfe == 4 and info.times.tolist() == times
    _, info = sample(zero_model, CONT, "bfn-solver++2", nfe=3, schedule=times, final="state", shape=(2, 3))
    assert info.nfe == 3


def test_denoise_needs_a_grid_that_ends_at_one():
    with pytest.raises(ValueError, match=r"final='denoise'.*must end at 1, got 0.6"):
        sample(zero_model, CONT, "bfn-solver++2", schedule=[0.2, 0.6], final="denoise", shape=(2, 3))


def test_two_dimensional_schedule_is_rejected():
    with pytest.raises(ValueError, match=r"1-D.*shape \(2, 2\)"):
        sample(zero_model, CONT, "bfn-solver++2", schedule=torch.tensor([[0.1, 0.4], [0.6, 1.0]]), shape=(2, 3))


@pytest.mark.parametrize("kwargs", [dict(schedule=[0.0, 0.5, 1.0]), dict(t_start=0.0)])
def test_ode_from_t_zero_is_a_clear_error(kwargs):
    with pytest.raises(ValueError, match=r"start time > 0"):
        sample(zero_model, CONT, "bfn-solver++2", shape=(2, 3), **kwargs)


def test_original_sampler_spends_no_draw_at_the_prior():
    """From t = 0 the state is the point mass mu = 0: the first draw of the generator is the first
    sender noise, so one step replays by hand."""
    oracle, process = oracle_problem("gmm")
    x, _ = sample(oracle, process, "bfn", schedule=[0.0, 0.5], final="state", shape=(3, 8),
                  dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    z0 = torch.zeros(3, 8, dtype=torch.float64)
    x0 = Denoiser(oracle, process)(z0, torch.tensor(0.0, dtype=torch.float64))
    noise = torch.randn(3, 8, generator=g, dtype=torch.float64)
    z1 = process.bayes_step(z0, x0, 0.0, 0.5, noise)
    torch.testing.assert_close(x, z1 / process.a(torch.tensor(0.5, dtype=torch.float64)), rtol=1e-12, atol=1e-12)


# --- plain tensors out, exact NFE ------------------------------------------------------------
def test_samples_carry_no_autograd_graph():
    net = torch.nn.Linear(3, 3)
    x, _ = sample(lambda mu, t: net(mu), CONT, "bfn-solver++2", nfe=4, shape=(5, 3))
    assert not x.requires_grad and x.grad_fn is None
    x.numpy()


def test_shared_denoiser_counts_each_call_exactly():
    denoiser = Denoiser(zero_model, CONT)
    counts, errors = [], []

    def run():
        try:
            for _ in range(5):
                counts.append(sample(denoiser, CONT, "bfn-solver++2", nfe=10, shape=(2, 3))[1].nfe)
        except Exception as err:          # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and counts == [10] * 20


def test_reference_solver_runs_a_float32_checkpoint_in_float64():
    model, process = load_checkpoint("digits-continuous")
    for dtype in (torch.float32, torch.float64):
        x, info = sample(model, process, "reference", shape=(2, 8, 8, 1), dtype=dtype, rtol=1e-3, atol=1e-3,
                         generator=torch.Generator().manual_seed(0))
        assert x.dtype == dtype and bool(torch.isfinite(x).all()) and info.nfe > 2


def test_reference_rejects_an_nfe():
    with pytest.raises(ValueError, match="omit nfe"):
        sample(zero_model, CONT, "reference", nfe=10, shape=(2, 3))


# --- argument validation ---------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(shape=16), "shape must be a non-empty tuple"),
    (dict(shape=(2.5, 8)), "shape must be a non-empty tuple"),
    (dict(shape=(2, 3), generator=42), "generator must be None, a torch.Generator"),
    (dict(shape=(2, 3), generator=[1, 2, 3]), "one generator or seed per sample"),
    (dict(shape=(2, 3), dtype=torch.int64), "dtype must be a floating"),
    (dict(shape=(2, 3), nfe=10 ** 12), "nfe must be an integer in"),
    (dict(shape=(2, 3), nfe=True), "nfe must be an integer in"),
    (dict(shape=(2, 3), t_start=float("nan")), "t_start must be a number in"),
    (dict(shape=(2, 3), schedule="foo"), "schedule must be one of"),
    (dict(shape=(2, 3), readout_as="median"), "readout_as must be"),
    (dict(shape=(2, 3), final="end"), "final must be"),
    (dict(shape=(2, 3), callback=3), "callback must be callable"),
    (dict(shape=(2, 3), warp=2), "takes no option 'warp'"),
    (dict(), "shape must be given"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample(zero_model, CONT, "bfn-solver++2", **kwargs)


def test_process_must_be_a_process():
    with pytest.raises(ValueError, match="process must be a BFNProcess"):
        sample(zero_model, "gmm", shape=(2, 3))


def test_denoiser_for_another_process_is_rejected():
    with pytest.raises(ValueError, match="the Denoiser wraps"):
        sample(Denoiser(zero_model, ContinuousBFN(0.02)), CONT, shape=(2, 3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_unavailable_device_is_a_value_error():
    with pytest.raises(ValueError, match="device 'cuda' is not available"):
        sample(zero_model, CONT, shape=(2, 3), device="cuda")


# --- per-sample generators ---------------------------------------------------------------------
@pytest.mark.parametrize("problem, solver", [("gmm", "bfn-unipc3"), ("gmm", "sde-bfn-solver++2"), ("gmm", "bfn"),
                                             ("markov", "sde-bfn-unipc3-t"), ("markov", "bfn"),
                                             ("discretised", "bfn")])
def test_sample_i_is_the_same_in_any_batch(problem, solver):
    oracle, process = oracle_problem(problem)
    shape = (oracle.length,) if problem == "markov" else ((16,) if problem == "discretised" else (8,))
    seeds = [11, 12, 13, 14]
    kw = dict(nfe=6, dtype=torch.float64, readout_as="sample")
    x4, _ = sample(oracle, process, solver, shape=(4,) + shape, generator=seeds, **kw)
    x1, _ = sample(oracle, process, solver, shape=(1,) + shape, generator=[seeds[2]], **kw)
    x2, _ = sample(oracle, process, solver, shape=(2,) + shape,
                   generator=[torch.Generator().manual_seed(s) for s in seeds[1:3]], **kw)
    torch.testing.assert_close(x1[0], x4[2], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x2[1], x4[2], rtol=1e-9, atol=1e-9)
    assert not torch.equal(x4[0], x4[1])


def test_process_arguments_are_checked():
    with pytest.raises(ValueError, match="t_min must be a number"):
        ContinuousBFN(0.01, t_min=float("nan"))
    with pytest.raises(ValueError, match=r"lam must be at most lambda\(1\)"):
        ContinuousBFN(0.01).t_of_lam(torch.tensor(1e3))
    with pytest.raises(ValueError, match=r"lam must be at most lambda\(1\)"):
        DISCRETE.t_of_lam(torch.tensor(5.0))
    top = CONT.lam(1.0)
    assert abs(float(CONT.t_of_lam(top)) - 1.0) < 1e-12
