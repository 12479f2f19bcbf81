"""evaluate_nll (the negative ELBO L_inf + L^r) against independent derivations on tiny discrete BFNs."""
import math

import pytest
import torch
from torch import nn

from bfnsolvers.processes import ChemBFNDiscrete, DiscreteBFN
from bfnsolvers.train import evaluate_nll

K, L = 5, 3


class FixedOutput(nn.Module):
    """A network whose output distribution is p at every position, whatever theta and t."""

    output_type = "logits"

    def __init__(self, p: torch.Tensor):
        super().__init__()
        self.register_buffer("logp", p.log())

    def forward(self, theta, t):
        return self.logp.expand(*theta.shape[:-1], K)


class Linear(nn.Module):
    """e_hat = softmax(theta W): depends on theta, so L_inf's inner expectation over theta is not trivial."""

    output_type = "logits"

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, theta, t):
        return theta @ self.w


def _process(beta_1: float = 20.4054 / K) -> DiscreteBFN:
    return DiscreteBFN(beta=ChemBFNDiscrete(beta_1, K), num_classes=K)


def test_fixed_output_model_has_the_closed_form_elbo():
    """With e_hat = p fixed, L_inf = (K/2) beta(1) sum_l ||e_x_l - p||^2 (int_0^1 alpha dt = beta(1)) and
    L^r = -sum_l ln p_{x_l}: the Monte-Carlo estimate covers the closed form within 4 standard errors."""
    p = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05])
    x = torch.randint(0, K, (400, L), generator=torch.Generator().manual_seed(1))
    process = _process()
    est = evaluate_nll(FixedOutput(p), process, x, seed=0, repeats=3)
    e = torch.nn.functional.one_hot(x, K).double()
    li = K / 2 * process.beta(torch.tensor(1.0, dtype=torch.float64)) * ((e - p.double()) ** 2).sum((-1, -2))
    lr = -p.double().log()[x].sum(-1)
    s = est.summary()
    d = (est.loss_inf - li)                                   # per item: only t varies, so a relative check
    assert abs(d.mean().item()) < 4 * d.std().item() / math.sqrt(len(d))
    assert d.abs().max() > 0                                  # the estimator is Monte Carlo in t
    torch.testing.assert_close(est.recon, lr, rtol=1e-5, atol=1e-5)       # theta(1) does not matter here
    assert abs(s["nll"] - (li + lr).mean().item()) < 4 * s["nll_se"] + 1e-12
    assert s["nll"] == pytest.approx(s["loss_inf"] + s["recon"])
    per_dim = est.summary(dims=L)
    assert per_dim["nll"] == pytest.approx(s["nll"] / L) and per_dim["nll_se"] == pytest.approx(s["nll_se"] / L)


def test_loss_inf_matches_a_float64_quadrature_in_beta():
    """For e_hat = softmax(theta W), L_inf = int_0^1 alpha(t) g(beta(t)) dt = int_0^beta(1) g(beta) d beta with
    g(beta) = (K/2) E_eps ||e_x - e_hat(softmax(beta (K e_x - 1) + sqrt(K beta) eps))||^2: Gauss-Legendre in
    beta (no alpha, no t) with the inner mean over 20000 fixed eps per node, in float64, written here."""
    w = torch.randn(K, K, generator=torch.Generator().manual_seed(2)) * 3
    x = torch.tensor([[0, 3, 1], [4, 4, 2]])
    process = _process(beta_1=4.0)
    model = Linear(w)
    est = evaluate_nll(model, process, x.repeat(3000, 1), seed=0, repeats=2)
    b1 = float(process.beta(torch.tensor(1.0, dtype=torch.float64)))
    nodes, weights = (torch.tensor(v, dtype=torch.float64) for v in __import__("numpy").polynomial.legendre.leggauss(40))
    betas, wts = b1 * (nodes + 1) / 2, b1 / 2 * weights
    eps = torch.randn(20000, 1, L, K, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    e = torch.nn.functional.one_hot(x, K).double()                 # (2, L, K)
    exact = torch.zeros(2, dtype=torch.float64)
    for b, wt in zip(betas, wts):
        theta = torch.softmax(b * (K * e - 1) + (K * b).sqrt() * eps, -1)
        e_hat = torch.softmax(theta @ w.double(), -1)
        exact += wt * K / 2 * ((e - e_hat) ** 2).sum((-1, -2)).mean(0)
    got = est.loss_inf.view(3000, 2)
    mean, se = got.mean(0), got.std(0) / math.sqrt(3000)
    assert torch.all((mean - exact).abs() < 4 * se + 2e-3 * exact), (mean, se, exact)
    assert torch.all(se < 0.05 * exact)                          # the check has power


def test_evaluate_nll_is_seeded_and_checks_its_arguments():
    p = torch.full((K,), 1 / K)
    x = torch.randint(0, K, (10, L), generator=torch.Generator().manual_seed(0))
    model, process = FixedOutput(p), _process()
    a, b = evaluate_nll(model, process, x, seed=5), evaluate_nll(model, process, x, seed=5)
    torch.testing.assert_close(a.nll, b.nll)
    assert not torch.equal(a.loss_inf, evaluate_nll(model, process, x, seed=6).loss_inf)
    with pytest.raises(ValueError, match="repeats"):
        evaluate_nll(model, process, x, repeats=0)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_nll(model, process, x, batch_size=0)
    with pytest.raises(ValueError, match="x"):
        evaluate_nll(model, process, x[:1])
