"""Noise processes: Bayesian updates vs the flow, linear SDE marginals, lambda, losses, validation."""
import math

import pytest
import torch

from bfnsolvers import ChemBFNDiscrete, ContinuousBFN, DiscreteBFN, DiscretisedBFN
from bfnsolvers.oracles import DiscretisedOracle, GaussianMixtureOracle, MarkovChainOracle

PROCESSES = [ContinuousBFN(1e-3), ContinuousBFN(math.sqrt(1e-3)), DiscretisedBFN(math.sqrt(1e-3), 16),
             DiscreteBFN(9.0, 2), DiscreteBFN(0.75 ** 2, 27)]
#: processes on non-default accuracy schedules (processes/accuracy.py): ChemBFN's and user callables
OTHER_SCHEDULES = [ContinuousBFN(beta=lambda t: torch.expm1(math.log(1e6) * t ** 1.5)),
                   DiscretisedBFN(beta=lambda t: 1e3 * t ** 1.7, num_bins=16),
                   DiscreteBFN(beta=ChemBFNDiscrete(0.5625, 27), num_classes=27),
                   DiscreteBFN(beta=lambda t: 3.0 * t ** 1.7, num_classes=3)]
Z = 5.0  # tolerances are Z standard errors


def assert_moments(samples: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
    """Sample mean and variance per coordinate within Z standard errors of the exact values."""
    n = samples.shape[0]
    se_mean = (var / n).sqrt()
    assert ((samples.mean(0) - mean).abs() <= Z * se_mean).all(), (samples.mean(0), mean)
    se_var = var * math.sqrt(2 / (n - 1))
    assert ((samples.var(0) - var).abs() <= Z * se_var).all(), (samples.var(0), var)


@pytest.mark.parametrize("n_steps,n_grid", [(5, 5), (3, 6)])
def test_continuous_updates_match_flow(n_steps, n_grid):
    p = ContinuousBFN(0.02)
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([0.7, -0.3, 0.0], dtype=torch.float64).expand(20000, 3)
    mu, rho = torch.zeros_like(x), 1.0
    for acc in p.n_step_accuracies(n_grid)[:n_steps]:
        mu, rho = p.bayesian_update(mu, rho, p.sender_sample(x, acc, g), acc)
    t = n_steps / n_grid
    gamma = p.gamma(t)
    assert rho == pytest.approx(1 + p.beta(t).item(), rel=1e-12)
    assert_moments(mu, gamma * x[0], (gamma * (1 - gamma)).expand(3))
    assert_moments(p.flow_sample(x, t, g), gamma * x[0], (gamma * (1 - gamma)).expand(3))


def test_discrete_updates_match_flow():
    p = DiscreteBFN(2.0, 4)
    g = torch.Generator().manual_seed(1)
    x = torch.tensor([2, 0]).expand(20000, 2)
    theta = torch.full((20000, 2, 4), 0.25, dtype=torch.float64)
    y_sum = torch.zeros(20000, 2, 4, dtype=torch.float64)
    for acc in p.n_step_accuracies(6)[:4]:
        y = p.sender_sample(x, acc, g).double()
        theta, y_sum = p.bayesian_update(theta, y), y_sum + y
    t = 4 / 6
    torch.testing.assert_close(theta, torch.softmax(y_sum, -1))   # theta_t = softmax(sum of sender samples)
    beta = p.beta(t)
    x0 = p.to_x0(x[:1]).double()[0]
    assert_moments(y_sum.reshape(20000, -1), (beta * x0).flatten(), (4 * beta).expand(8))
    assert_moments(p.flow_sample(x, t, g).double().reshape(20000, -1), (beta * x0).flatten(), (4 * beta).expand(8))


@pytest.mark.parametrize("process", [ContinuousBFN(0.05), DiscreteBFN(3.0, 3), ContinuousBFN(beta=lambda t: torch.expm1(3 * t ** 1.5)),
                                     DiscreteBFN(beta=ChemBFNDiscrete(3.0, 3), num_classes=3)], ids=repr)
def test_sde_euler_maruyama_reproduces_flow_marginals(process):
    """Simulate the noising SDE dz = f z ds + g dw (s = 1 - t) from t = 1 down to t and compare marginals."""
    g = torch.Generator().manual_seed(2)
    n = 10000
    x0 = torch.tensor([0.6, -0.4, 0.1], dtype=torch.float64)
    z = process.a(1.0) * x0 + process.s(1.0) * torch.randn(n, 3, generator=g, dtype=torch.float64)
    ts = torch.linspace(1.0, 0.25, 1501, dtype=torch.float64)
    f, g2 = process.sde_f(ts).tolist(), process.sde_g2(ts).tolist()
    for i in range(1500):
        ds = (ts[i] - ts[i + 1]).item()
        z = z + f[i] * z * ds + math.sqrt(g2[i] * ds) * torch.randn(n, 3, generator=g, dtype=torch.float64)
        if (i + 1) % 500 == 0:
            t = ts[i + 1]
            assert_moments(z, process.a(t) * x0, (process.s(t) ** 2).expand(3))


@pytest.mark.parametrize("process", PROCESSES + OTHER_SCHEDULES, ids=repr)
def test_lambda_inverse_and_finiteness(process):
    t = torch.cat([torch.logspace(-9, 0, 400, dtype=torch.float64), torch.linspace(1e-3, 1, 400, dtype=torch.float64)])
    torch.testing.assert_close(process.t_of_lam(process.lam(t)), t, rtol=1e-10, atol=1e-10)
    for dtype in (torch.float32, torch.float64):
        grid = torch.linspace(0, 1, 1001, dtype=dtype)
        for name in ("beta", "alpha", "a", "s", "lam", "sde_f", "sde_g2"):
            v = getattr(process, name)(grid)
            assert torch.isfinite(v).all(), (name, dtype)
    lam = process.lam(torch.linspace(1e-6, 1, 1000, dtype=torch.float64))
    assert bool((lam[1:] > lam[:-1]).all()), "lambda must increase with t"


@pytest.mark.parametrize("process", PROCESSES, ids=repr)
def test_step_accuracies_sum_to_final_accuracy(process):
    acc = process.n_step_accuracies(37)
    assert acc.sum().item() == pytest.approx(process.beta(1.0).item(), rel=1e-12)
    if isinstance(process, ContinuousBFN):   # alpha_i = sigma_1^(-2i/n) (1 - sigma_1^(2/n))
        i = torch.arange(1, 38, dtype=torch.float64)
        torch.testing.assert_close(acc, process.sigma_1 ** (-2 * i / 37) * (1 - process.sigma_1 ** (2 / 37)))
    else:                                     # alpha_i = beta_1 (2i - 1) / n^2
        i = torch.arange(1, 38, dtype=torch.float64)
        torch.testing.assert_close(acc, process.beta_1 * (2 * i - 1) / 37 ** 2)


class ConstantModel:
    """A model whose output ignores its input."""

    def __init__(self, output_type: str, value: torch.Tensor):
        self.output_type, self.value = output_type, value

    def __call__(self, params, t):
        shape = params.shape if self.output_type == "logits" else params.shape + (self.value.shape[-1],)
        return self.value.to(params.dtype).expand(shape)


def _loss_means(process, model, x, ns, reps, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n in ns:
        vals = torch.cat([(process.loss_n(model, x, n, g) if n else process.loss_inf(model, x, g)) for _ in range(reps)])
        out[n] = (vals.mean().item(), vals.std().item() / math.sqrt(vals.numel()))
    return out


@pytest.mark.parametrize("kind", ["continuous", "discretised", "discrete"])
def test_loss_n_approaches_loss_inf(kind):
    """An imperfect model: an exact oracle would make every L_n equal -ln p(x) up to the
    reconstruction term, hiding the convergence. Continuous: an oracle for the wrong sigma_1;
    discretised and discrete: a model that ignores its input."""
    g = torch.Generator().manual_seed(3)
    if kind == "continuous":
        process = ContinuousBFN(0.05, x_range=None)
        data = GaussianMixtureOracle(process, torch.tensor([[0.5, -0.5], [-0.5, 0.2]]), 0.3)
        model = GaussianMixtureOracle(ContinuousBFN(0.3, x_range=None), data.means, 0.3)
    elif kind == "discretised":
        process = DiscretisedBFN(0.05, 8)
        data = DiscretisedOracle(process, torch.rand(2, 8, generator=g) + 0.1)
        probs = torch.rand(2, 8, generator=g) + 0.1
        model = ConstantModel("bin_probs", probs / probs.sum(-1, keepdim=True))
    else:
        process = DiscreteBFN(2.0, 3)
        data = MarkovChainOracle(process, torch.ones(3), torch.tensor([[.6, .3, .1], [.2, .2, .6], [.3, .4, .3]]), 3)
        model = ConstantModel("logits", torch.tensor([0.5, -0.2, 0.1]))
    x = data.sample(4000, g)
    x = x.float() if x.is_floating_point() else x
    m = _loss_means(process, model, x, [0, 1, 10, 100000], reps=2)
    inf_mean, inf_se = m[0]
    gaps = {n: abs(m[n][0] - inf_mean) for n in (1, 10, 100000)}
    se = {n: math.hypot(m[n][1], inf_se) for n in (1, 10, 100000)}
    print(kind, {n: f"{v[0]:.4f} +- {v[1]:.4f}" for n, v in m.items()})
    assert gaps[100000] <= Z * se[100000], (m, "L_100000 should equal L_inf within Monte Carlo error")
    assert gaps[1] > gaps[100000] and gaps[1] > Z * se[1], (m, "L_1 should be measurably off L_inf")


def test_reconstruction_loss():
    process = DiscreteBFN(4.0, 3)
    model = MarkovChainOracle(process, torch.ones(3), torch.eye(3) * 0.7 + 0.1, 4)
    x = model.sample(500, torch.Generator().manual_seed(0))
    lr = process.reconstruction_loss(model, x, torch.Generator().manual_seed(1))
    assert lr.shape == (500,) and bool((lr >= 0).all())
    with pytest.raises(NotImplementedError):
        ContinuousBFN(0.01).reconstruction_loss(model, x)


def test_bad_inputs_raise_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="sigma_1"):
        ContinuousBFN(1.5)
    with pytest.raises(ValueError, match="sigma_1"):
        ContinuousBFN(0.0)
    with pytest.raises(ValueError, match="num_classes"):
        DiscreteBFN(1.0, 1)
    with pytest.raises(ValueError, match="beta_1"):
        DiscreteBFN(-1.0, 4)
    with pytest.raises(ValueError, match="num_bins"):
        DiscretisedBFN(0.1, 1)
    p = ContinuousBFN(0.01)
    for bad in (-0.1, 1.2, float("nan")):
        with pytest.raises(ValueError, match=r"\bt\b"):
            p.gamma(bad)
    with pytest.raises(ValueError, match="shape"):
        p.output_distribution(torch.zeros(2, 3), torch.zeros(2, 4), 0.5)
    with pytest.raises(ValueError, match="t must"):
        p.flow_sample(torch.zeros(4, 2), torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="x must"):
        DiscreteBFN(1.0, 3).to_x0(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="n must"):
        p.n_step_accuracies(0)
