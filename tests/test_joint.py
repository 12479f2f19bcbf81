"""Joint BFNs (coordinates + types): oracle vs brute force, orders, geometry, masks, batch invariance, errors."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from bfnsolvers import ContinuousBFN, DiscreteBFN, sample
from bfnsolvers.joint import (JointBFN, JointMoleculeOracle, assign_to_molecules, assignment_chi2, com_free_gaussian_log_prob,
                              com_project, joint_oracle_problem, joint_times, mean_normalised_logsnr, molecule_adapter,
                              sample_joint)
from bfnsolvers.joint.geometry import node_noise
from bfnsolvers.joint.oracle import coordinate_sliced_w2, jitter_ratio
from bfnsolvers.oracles import GaussianMixtureOracle, MarkovChainOracle
from bfnsolvers.solvers import SOLVERS, register_solver

F64 = torch.float64
Z = 5.0


def small_problem():
    """3 molecules, 4 nodes, K = 4: cheap enough for order measurements."""
    joint = JointBFN(pos=ContinuousBFN(1e-3, x_range=None), types=DiscreteBFN(3.0, 4), zero_com="pos")
    g = torch.Generator().manual_seed(0)
    templates = 0.5 * torch.randn(3, 4, 3, generator=g, dtype=F64)
    types = torch.randint(0, 4, (3, 4), generator=g)
    return JointMoleculeOracle(joint, templates, types, 0.15, torch.tensor([0.5, 0.3, 0.2])), joint


def shapes(b, n=5):
    return {"pos": (b, n, 3), "types": (b, n)}


# --- the oracle ------------------------------------------------------------------------------------
def helmert(n: int) -> torch.Tensor:
    """An orthonormal basis (n, n - 1) of the zero-sum subspace of R^n."""
    q, _ = torch.linalg.qr(torch.cat([torch.ones(n, 1, dtype=F64), torch.randn(n, n - 1, generator=torch.Generator().manual_seed(5), dtype=F64)], 1))
    return q[:, 1:]


@pytest.mark.parametrize("t", [0.25, 0.4])
def test_oracle_posterior_matches_importance_sampling(t):
    """Self-normalised importance sampling with the exact prior as proposal and the *full* Gaussian likelihoods
    of both states (z_pos on the zero-CoM subspace via an orthonormal basis, y_l ~ N(beta (K e - 1), K beta I)),
    an independent derivation of the oracle's E[x_pos | z] and p(type_l | z)."""
    joint = JointBFN(pos=ContinuousBFN(0.05, x_range=None), types=DiscreteBFN(1.0, 3), zero_com="pos")
    g = torch.Generator().manual_seed(1)
    oracle = JointMoleculeOracle(joint, 0.4 * torch.randn(3, 3, 2, generator=g, dtype=F64),
                                 torch.tensor([[0, 1, 2], [0, 1, 1], [2, 2, 0]]), 0.3, torch.tensor([0.5, 0.3, 0.2]))
    prior_pos, prior_types, _, _ = oracle.sample(200000, g)
    cp, dp = joint["pos"], joint["types"]
    a, s = float(cp.a(t)), float(cp.s(t))
    beta, K = float(dp.beta(t)), 3
    q = helmert(3)
    x_pos, x_types, _, _ = oracle.sample(3, g)
    for b in range(3):
        z = a * x_pos[b] + s * com_project(torch.randn(1, 3, 2, generator=g, dtype=F64))[0]
        y = beta * dp.to_x0(x_types[b]).double() + math.sqrt(K * beta) * torch.randn(3, K, generator=g, dtype=F64)
        u_z, u_x = q.T @ z, torch.einsum("nk,bnd->bkd", q, prior_pos)         # subspace coordinates
        logw = -((u_z - a * u_x) ** 2).sum((1, 2)) / (2 * s * s)
        logw = logw - ((y - beta * dp.to_x0(prior_types).double()) ** 2).sum((1, 2)) / (2 * K * beta)
        w = torch.softmax(logw, 0)
        ess = float(1 / (w ** 2).sum())
        assert ess > 500
        mean = (w.view(-1, 1, 1) * prior_pos).sum(0)
        se = ((w.view(-1, 1, 1) * (prior_pos - mean) ** 2).sum(0) / ess).sqrt()
        onehot = torch.nn.functional.one_hot(prior_types, K).double()
        p_types = (w.view(-1, 1, 1) * onehot).sum(0)
        se_t = (p_types * (1 - p_types) / ess).sqrt()
        out = oracle({"pos": z.unsqueeze(0), "types": torch.softmax(y, -1).unsqueeze(0)}, torch.tensor([t], dtype=F64))
        assert ((out["pos"][0] - mean).abs() <= Z * se + 1e-6).all(), (out["pos"][0], mean, se)
        assert ((out["types"][0] - p_types).abs() <= Z * se_t + 1e-4).all(), (out["types"][0], p_types)


def test_com_free_density_uses_n_minus_1_degrees_of_freedom():
    """log N(x; m, var P) equals the (n - 1) D dimensional normal density of the subspace coordinates Q^T x
    (scipy), and the oracle's entropy E[-log p] matches (n - 1) D / 2 ln(2 pi e sigma^2) (Monte Carlo)."""
    n, d, var = 4, 3, 0.2
    q = helmert(n)
    x = com_project(torch.randn(6, n, d, generator=torch.Generator().manual_seed(2), dtype=F64))
    mean = com_project(torch.randn(6, n, d, generator=torch.Generator().manual_seed(3), dtype=F64))
    ours = com_free_gaussian_log_prob(x, mean, var)
    u = torch.einsum("nk,bnd->bkd", q, x - mean).flatten(1).numpy()
    ref = stats.multivariate_normal(np.zeros((n - 1) * d), var * np.eye((n - 1) * d)).logpdf(u)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-12)
    joint = JointBFN(pos=ContinuousBFN(1e-3, x_range=None), types=DiscreteBFN(3.0, 4), zero_com="pos")
    oracle = JointMoleculeOracle(joint, torch.randn(1, n, d, dtype=F64), torch.zeros(1, n, dtype=torch.long), 0.1)
    pos, types, _, _ = oracle.sample(20000, torch.Generator().manual_seed(4))
    nll = -oracle.log_prob(pos, types)
    entropy = 0.5 * (n - 1) * d * math.log(2 * math.pi * math.e * 0.01)
    assert abs(float(nll.mean()) - entropy) < Z * float(nll.std()) / math.sqrt(len(nll))
    assert abs(entropy - 0.5 * n * d * math.log(2 * math.pi * math.e * 0.01)) > 1.0     # n D would fail


def test_exact_samples_pass_the_two_sample_statistics():
    oracle, _ = joint_oracle_problem()
    pos, types, m, _ = oracle.sample(4000, torch.Generator().manual_seed(0))
    a = assign_to_molecules(oracle, pos, types)
    assert torch.equal(a, m)
    assert assignment_chi2(a, oracle.weights)["p"] > 1e-3 and abs(jitter_ratio(oracle, pos, a) - 1) < 0.02
    wrong = types.clone()
    wrong[:100, 0] = (wrong[:100, 0] + 1) % 5
    assert (assign_to_molecules(oracle, pos, wrong)[:100] == -1).float().mean() > 0.5


# --- the original joint sampler reproduces the exact joint distribution ----------------------------
def test_original_sampler_reproduces_the_exact_joint_distribution():
    oracle, joint = joint_oracle_problem()
    x, info = sample_joint(oracle, joint, "bfn", nfe=500, shapes=shapes(1500), generator=torch.Generator().manual_seed(0))
    assert info.nfe == 500 and info.forward_passes == 500
    a = assign_to_molecules(oracle, x["pos"], x["types"])
    chi = assignment_chi2(a, oracle.weights)
    assert chi["invalid"] == 0 and chi["p"] > 1e-3, chi
    ref = oracle.sample(1500, torch.Generator().manual_seed(10))[0]
    floors = [coordinate_sliced_w2(oracle.sample(1500, torch.Generator().manual_seed(20 + i))[0], ref,
                                   generator=torch.Generator().manual_seed(7)) for i in range(4)]
    sw2 = coordinate_sliced_w2(x["pos"], ref, generator=torch.Generator().manual_seed(7))
    assert sw2 <= np.mean(floors) + 3 * np.std(floors), (sw2, floors)
    assert abs(jitter_ratio(oracle, x["pos"], a) - 1) < 0.05
    # and a coarse run is measurably off (the statistic can fail)
    x, _ = sample_joint(oracle, joint, "bfn", nfe=10, shapes=shapes(1500), generator=torch.Generator().manual_seed(0))
    assert abs(jitter_ratio(oracle, x["pos"], assign_to_molecules(oracle, x["pos"], x["types"])) - 1) > 0.2


# --- convergence orders -------------------------------------------------------------------------------
_REF = {}


def reference_states(t0=1e-6):
    if t0 not in _REF:
        oracle, joint = small_problem()
        g = torch.Generator().manual_seed(1)
        z0 = {n: float(joint[n].s(t0)) * node_noise(joint.state_shape(n, shapes(16, 4)[n]), g, F64, "cpu", None, n == "pos")
              for n in joint}
        _, info = sample_joint(oracle, joint, "reference", z_start=z0, t_start=t0, final="state",
                               solver_options={"pos": {"rtol": 1e-10, "atol": 1e-10}})
        _REF[t0] = (oracle, joint, z0, info.states)
    return _REF[t0]


@pytest.mark.parametrize("pos,types", [("bfn-solver++1", "bfn-solver++1"), ("bfn-solver++2", "bfn-solver2-s"),
                                       ("bfn-solver2", "bfn-solver2"), ("bfn-solver++3", "bfn-solver3-t"),
                                       ("bfn-unipc3", "bfn-unipc3-t"), ("bfn-unipc3", "bfn-unipc3")])
def test_joint_convergence_order(pos, types):
    """Error at t = 1 of both modalities vs the joint dopri5 (float64, logsnr-mean grid from t = 1e-6, 128-512
    steps); the nominal order of a combination is the lower of its two. Run with -s for the slopes."""
    oracle, joint, z0, ref = reference_states()
    steps = [128, 256, 512]
    errors = []
    for n in steps:
        _, info = sample_joint(oracle, joint, {"pos": pos, "types": types}, nfe=n, z_start=z0, t_start=1e-6, final="state")
        errors.append(max(float((info.states[k] - ref[k]).abs().max()) for k in joint))
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    nominal = min(SOLVERS[pos].order, SOLVERS[types].order)
    print(f"\njoint {pos} + {types}: nominal {nominal}, slope {slope:.2f}, errors " + " ".join(f"{e:.2e}" for e in errors))
    assert abs(slope - nominal) <= 0.3


# --- lock-step: one joint call per step, and the same updates as each modality's own solver -------------
def product_model():
    """Two independent modalities (a GMM in 2-D, a Markov chain of 5 tokens): the joint posterior factorises."""
    joint = JointBFN(x=ContinuousBFN(1e-3, x_range=None), y=DiscreteBFN(2.0, 4))
    gmm = GaussianMixtureOracle(joint["x"], torch.tensor([[0.5, 0.3], [-0.4, -0.2]], dtype=F64), 0.15)
    chain = MarkovChainOracle(joint["y"], torch.ones(4), torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) + 0.2, 5)
    calls = []

    def model(inputs, t):
        calls.append(float(t[0]))
        return {"x": gmm(inputs["x"], t), "y": chain(inputs["y"], t)}

    model.output_types = {"x": "x", "y": "logits"}
    return joint, gmm, chain, model, calls


@pytest.mark.parametrize("sx,sy", [("bfn-unipc3", "bfn-unipc3-t"), ("bfn-solver++2", "bfn-solver2-s"), ("bfn-solver++3", "bfn-solver++2")])
def test_lockstep_equals_each_modality_sampled_alone(sx, sy):
    joint, gmm, chain, model, calls = product_model()
    g = torch.Generator().manual_seed(3)
    z0 = {"x": 0.1 * torch.randn(8, 2, generator=g, dtype=F64), "y": 0.01 * torch.randn(8, 5, 4, generator=g, dtype=F64)}
    ts = joint_times("logsnr-mean", 7, joint, 1e-3)
    x, info = sample_joint(model, joint, {"x": sx, "y": sy}, schedule=ts, z_start=z0)
    assert info.nfe == 7 == len(calls) and calls == sorted(calls) and len(set(calls)) == 7   # one joint call per step
    # the joint sampler's final step ("drop"), named: the discrete default of sample() ends with a call at t = 1
    alone_x, ix = sample(gmm, joint["x"], sx, schedule=ts, z_start=z0["x"], dtype=F64, final="drop")
    alone_y, iy = sample(chain, joint["y"], sy, schedule=ts, z_start=z0["y"], dtype=F64, final="drop")
    assert ix.nfe == iy.nfe == 7
    torch.testing.assert_close(x["x"], alone_x, rtol=0, atol=1e-12)
    assert torch.equal(x["y"], alone_y)


def test_solvers_that_call_at_different_times_or_counts_are_rejected():
    joint, _, _, model, _ = product_model()

    def skewed(model, z, ts, *, callback=None):
        for i in range(len(ts) - 1):
            model(z, ts[i] + 1e-3)
        return z

    def greedy(model, z, ts, *, callback=None):
        for i in range(2 * (len(ts) - 1)):
            model(z, ts[min(i, len(ts) - 2)])
        return z

    register_solver("test-joint-skewed", skewed, 1, "ode", "calls off the grid", overwrite=True)
    register_solver("test-joint-greedy", greedy, 1, "ode", "twice the calls", overwrite=True)
    try:
        with pytest.raises(ValueError, match="different times"):
            sample_joint(model, joint, {"x": "bfn-solver++1", "y": "test-joint-skewed"}, nfe=5, shapes={"x": (2, 2), "y": (2, 5)})
        with pytest.raises(ValueError, match="different numbers"):
            sample_joint(model, joint, {"x": "bfn-solver++1", "y": "test-joint-greedy"}, nfe=5, shapes={"x": (2, 2), "y": (2, 5)})
    finally:
        SOLVERS.pop("test-joint-skewed"), SOLVERS.pop("test-joint-greedy")


# --- grids -----------------------------------------------------------------------------------------------
def test_grid_rules():
    oracle, joint = joint_oracle_problem()
    ts = joint_times("logsnr-mean", 12, joint, 1e-3)
    u = mean_normalised_logsnr(joint, ts, 1e-3)
    torch.testing.assert_close(u, torch.linspace(0, 1, 13, dtype=F64), rtol=0, atol=1e-12)
    lam = joint["pos"].lam(joint_times("logsnr-pos", 12, joint, 1e-3))
    torch.testing.assert_close(lam[1:] - lam[:-1], torch.full((12,), float(lam[-1] - lam[0]) / 12, dtype=F64), rtol=1e-9, atol=1e-12)
    single = JointBFN(x=ContinuousBFN(1e-3))
    from bfnsolvers.schedules import logsnr
    torch.testing.assert_close(joint_times("logsnr-mean", 9, single, 1e-3), logsnr(9, 1e-3, single["x"]), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="schedule"):
        joint_times("logsnr-charges", 5, joint, 1e-3)


# --- geometry and masks ----------------------------------------------------------------------------------
def recording(oracle):
    seen = []

    def model(inputs, t, mask=None):
        seen.append({k: v.clone() for k, v in inputs.items()})
        return oracle(inputs, t, mask)

    model.output_types = oracle.output_types
    return model, seen


@pytest.mark.parametrize("solver", ["bfn", {"pos": "bfn-unipc3", "types": "bfn-unipc3-t"},
                                    {"pos": "sde-bfn-solver++2", "types": "sde-bfn-unipc3-t"}])
def test_zero_com_at_every_step_and_padded_nodes_untouched(solver):
    oracle, joint = joint_oracle_problem(sizes=(3, 4, 5, 5))
    mask = torch.arange(5) < torch.tensor([3, 5, 4, 3, 5]).unsqueeze(1)
    model, seen = recording(oracle)
    x, info = sample_joint(model, joint, solver, nfe=12, shapes=shapes(5), mask=mask, generator=torch.Generator().manual_seed(0))
    m = mask.unsqueeze(-1).double()
    assert len(seen) == info.nfe == 12
    for inputs in seen + [{"pos": info.states["pos"], "types": info.states["types"].softmax(-1)}]:
        assert ((inputs["pos"] * m).sum(1) / m.sum(1)).abs().max() < 1e-13
        assert torch.equal(inputs["pos"][~mask], torch.zeros_like(inputs["pos"][~mask]))          # never moved from 0
        assert torch.equal(inputs["types"][~mask], torch.full_like(inputs["types"][~mask], 0.2))    # uniform theta
    assert ((x["pos"] * m).sum(1)).abs().max() < 1e-13 and (x["pos"][~mask] == 0).all() and (x["types"][~mask] == 0).all()
    assert (assign_to_molecules(oracle, x["pos"], x["types"], mask) >= 0).all()


def test_outputs_at_padded_nodes_are_ignored():
    oracle, joint = joint_oracle_problem(sizes=(3, 4, 5, 5))
    mask = torch.arange(5) < torch.tensor([3, 5, 4]).unsqueeze(1)

    def noisy(inputs, t, mask=None):
        out = oracle(inputs, t, mask)
        return {k: torch.where(mask.reshape(mask.shape + (1,)), v, torch.full_like(v, float("nan"))) for k, v in out.items()}

    noisy.output_types = oracle.output_types
    for solver in ("bfn", "bfn-unipc3"):
        solver = solver if solver == "bfn" else {"pos": "bfn-unipc3", "types": "bfn-unipc3-t"}
        clean, _ = sample_joint(oracle, joint, solver, nfe=8, shapes=shapes(3), mask=mask, generator=torch.Generator().manual_seed(1))
        dirty, _ = sample_joint(noisy, joint, solver, nfe=8, shapes=shapes(3), mask=mask, generator=torch.Generator().manual_seed(1))
        assert torch.equal(clean["pos"], dirty["pos"]) and torch.equal(clean["types"], dirty["types"])


@pytest.mark.parametrize("solver", ["bfn", {"pos": "bfn-unipc3", "types": "bfn-unipc3-t"},
                                    {"pos": "sde-bfn-solver++2", "types": "sde-bfn-unipc3-t"}])
def test_molecules_of_different_sizes_in_one_batch_equal_drawn_alone(solver):
    oracle, joint = joint_oracle_problem(sizes=(3, 4, 5, 5))
    sizes, seeds = [3, 5, 4, 3], [11, 12, 13, 14]
    mask = torch.arange(5) < torch.tensor(sizes).unsqueeze(1)
    batch, _ = sample_joint(oracle, joint, solver, nfe=10, shapes=shapes(4), mask=mask, generator=seeds)
    for b, (n, seed) in enumerate(zip(sizes, seeds)):
        alone, _ = sample_joint(oracle, joint, solver, nfe=10, shapes=shapes(1, n), generator=[seed])
        torch.testing.assert_close(batch["pos"][b, :n], alone["pos"][0], rtol=0, atol=1e-10)
        assert torch.equal(batch["types"][b, :n], alone["types"][0])
    other, _ = sample_joint(oracle, joint, solver, nfe=10, shapes=shapes(4), mask=mask, generator=[1, 2, 3, 4])
    assert not torch.allclose(other["pos"], batch["pos"])


# --- errors ----------------------------------------------------------------------------------------------
def test_clear_errors():
    oracle, joint = joint_oracle_problem()
    ok = dict(nfe=5, shapes=shapes(2))
    cases = [
        (dict(shapes={"pos": (2, 5, 3)}), "shapes"),
        (dict(shapes={"pos": (2, 5, 3), "types": (3, 5)}), "same batch size"),
        (dict(shapes={"pos": (2, 15), "types": (2, 5)}), "coordinates need shape"),
        (dict(solver={"pos": "bfn-unipc3"}), "solver"),
        (dict(solver={"pos": "bfn-unipc3-t", "types": "bfn-unipc3-t"}), "supports"),
        (dict(solver={"pos": "reference", "types": "bfn-unipc3-t"}), "reference"),
        (dict(solver={"pos": "bfn-unipc3", "types": "bfn-solver2-midpoint"}), "calls per step"),
        (dict(mask=torch.ones(2, 4, dtype=torch.bool)), "mask"),
        (dict(mask=torch.ones(2, 5)), "mask must be a bool"),
        (dict(mask=torch.zeros(2, 5, dtype=torch.bool)), "at least one real node"),
        (dict(schedule="logsnr-charges"), "schedule"),
        (dict(t_start=1.5), "t_start"),
        (dict(final="last"), "final"),
        (dict(solver_options={"pos": {"rtol": 2}}), "takes no option"),
        (dict(z_start={"pos": torch.zeros(2, 5, 3)}), "z_start"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            sample_joint(oracle, joint, **{**ok, **kwargs})
    with pytest.raises(ValueError, match="dict with the modalities"):
        sample_joint(lambda inputs, t: {"pos": inputs["pos"]}, joint, **ok)
    with pytest.raises(ValueError, match="zero_com"):
        JointBFN(pos=ContinuousBFN(1e-3, x_range=None), types=DiscreteBFN(3.0, 5), zero_com="types")
    with pytest.raises(ValueError, match="x_range"):
        JointBFN(pos=ContinuousBFN(1e-3), zero_com="pos")
    with pytest.raises(ValueError, match="BFNProcess"):
        JointBFN(pos="continuous")
    with pytest.raises(ValueError, match="real nodes first"):
        oracle({"pos": torch.zeros(1, 5, 3), "types": torch.full((1, 5, 5), 0.2)}, torch.tensor([0.5]),
               torch.tensor([[True, False, True, True, True]]))


# --- MolCRAFT / GeoBFN call convention ---------------------------------------------------------------
class TinyMoleculeNet(torch.nn.Module):
    """network(theta_pos, theta_types, t, cond, mask) -> (x0_hat_pos, type_logits): a per-atom MLP with a
    masked mean-pool message (no equivariance); ``flat`` takes concatenated atoms and a batch index."""

    def __init__(self, K=5, D=3, H=16, flat=False):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.inp, self.out, self.flat = torch.nn.Linear(D + K + 1, H), torch.nn.Linear(2 * H, D + K), flat
        for p in self.parameters():
            p.data = 0.3 * torch.randn(p.shape, generator=g)
        self.D, self.times = D, []

    def forward(self, pos, theta, t, cond, mask):
        self.times.append(tuple(t.shape))
        if self.flat:
            batch = mask
            h = torch.tanh(self.inp(torch.cat([pos, theta, t], -1)))
            pooled = torch.zeros(int(batch.max()) + 1, h.shape[-1]).index_add_(0, batch, h)
            pooled = pooled / torch.bincount(batch).unsqueeze(-1)
            out = self.out(torch.cat([h, pooled[batch]], -1))
        else:
            tt = t.view(-1, 1, 1).expand(*pos.shape[:2], 1)
            h = torch.tanh(self.inp(torch.cat([pos, theta, tt], -1)))
            m = mask.unsqueeze(-1).float()
            pooled = (h * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
            out = self.out(torch.cat([h, pooled.expand_as(h)], -1))
        return pos + 0.1 * out[..., :self.D], out[..., self.D:]


def test_molecule_adapter_padded_and_flat_agree_and_sample():
    _, joint = joint_oracle_problem()
    padded, flat = TinyMoleculeNet(), TinyMoleculeNet(flat=True)
    flat.load_state_dict(padded.state_dict())
    mask = torch.arange(5) < torch.tensor([3, 5, 4]).unsqueeze(1)
    g = torch.Generator().manual_seed(2)
    inputs = {"pos": torch.randn(3, 5, 3, generator=g), "types": torch.softmax(torch.randn(3, 5, 5, generator=g), -1)}
    t = torch.tensor([0.2, 0.5, 0.9])
    a, b = molecule_adapter(padded)(inputs, t, None, mask=mask), molecule_adapter(flat, flat=True)(inputs, t, None, mask=mask)
    assert padded.times[-1] == (3,) and flat.times[-1] == (12, 1)
    for k in ("pos", "types"):
        torch.testing.assert_close(a[k][mask], b[k][mask], rtol=1e-5, atol=1e-6)
        assert (b[k][~mask] == 0).all()
    assert molecule_adapter(padded).output_types == {"pos": "x", "types": "logits"}
    for net, flag in ((padded, False), (flat, True)):
        x, info = sample_joint(molecule_adapter(net, flat=flag), joint, nfe=8, shapes=shapes(3), mask=mask, generator=[0, 1, 2])
        m = mask.unsqueeze(-1).double()
        assert info.nfe == 8 and torch.isfinite(x["pos"]).all() and ((x["pos"] * m).sum(1)).abs().max() < 1e-6
        assert x["types"].shape == (3, 5) and x["types"].max() < 5
    alone, _ = sample_joint(molecule_adapter(padded), joint, nfe=8, shapes=shapes(1, 4), generator=[2])
    torch.testing.assert_close(x["pos"][2, :4], alone["pos"][0], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="time_shape"):
        molecule_adapter(padded, time_shape="BN")


def test_prior_mean_start_is_a_E_x0_plus_noise_and_counts_one_call():
    """start='prior-mean': the first call is at t = 0 at the prior's point mass (E[x0] exactly: sum_m w_m X_m,
    and K p(type) - 1); the next state the network sees has mean a(t0) E[x0] (Monte Carlo, 5 standard errors)."""
    oracle, joint = joint_oracle_problem()
    model, seen = recording(oracle)
    t0 = 1e-2
    _, info = sample_joint(model, joint, {"pos": "bfn-unipc3", "types": "bfn-unipc3-t"}, nfe=4, shapes=shapes(8000),
                           t_start=t0, start="prior-mean", generator=torch.Generator().manual_seed(0))
    assert info.nfe == len(seen) == 4 and float(info.times[0]) == t0
    assert (seen[0]["pos"] == 0).all() and torch.allclose(seen[0]["types"], torch.full_like(seen[0]["types"], 0.2))
    z = seen[1]["pos"]
    expected = float(joint["pos"].a(t0)) * (oracle.weights.view(-1, 1, 1) * oracle.templates).sum(0)
    se = z.std(0) / math.sqrt(z.shape[0])
    assert ((z.mean(0) - expected).abs() <= Z * se).all()
    assert (expected.abs() > Z * se).any()                      # the zero-mean start would fail this
    with pytest.raises(ValueError, match="prior-mean"):
        sample_joint(oracle, joint, "bfn", nfe=4, shapes=shapes(2), start="prior-mean")


def test_cond_and_mask_reach_the_network():
    oracle, joint = joint_oracle_problem(sizes=(3, 4, 5, 5))
    got = []

    def model(inputs, t, label, mask=None):
        got.append((label, mask))
        return oracle(inputs, t, mask)

    model.output_types = oracle.output_types
    label, mask = torch.tensor([1, 2]), torch.arange(5) < torch.tensor([3, 4]).unsqueeze(1)
    sample_joint(model, joint, nfe=4, shapes=shapes(2), cond=label, mask=mask)
    assert len(got) == 4 and all(torch.equal(l, label) and torch.equal(m, mask) for l, m in got)
    with pytest.raises(ValueError, match="cond"):
        sample_joint(model, joint, nfe=4, shapes=shapes(2), cond=torch.tensor([1, 2, 3]), mask=mask)


def test_three_modalities_with_discretised_charges():
    """GeoBFN-style: coordinates, types and discretised charges (eps_gaussian output) in one call; the charges
    read out as the output distribution's mean (as ``sample``'s default), inside [-1, 1]; padded nodes read 0."""
    from bfnsolvers import DiscretisedBFN
    joint = JointBFN(pos=ContinuousBFN(1e-3, x_range=None), types=DiscreteBFN(3.0, 5), charges=DiscretisedBFN(1e-2, 9),
                     zero_com="pos")
    calls = []

    def model(inputs, t, mask=None):
        calls.append(sorted(inputs))
        return {"pos": 0.1 * torch.tanh(inputs["pos"]), "types": inputs["types"].log(),
                "charges": torch.stack([torch.tanh(inputs["charges"]), torch.zeros_like(inputs["charges"])], -1)}

    model.output_types = {"pos": "eps", "types": "logits", "charges": "eps_gaussian"}
    mask = torch.arange(4) < torch.tensor([4, 2]).unsqueeze(1)
    for solver in ("bfn", {"pos": "bfn-unipc3", "types": "bfn-unipc3-t", "charges": "sde-bfn-solver++2"}):
        x, info = sample_joint(model, joint, solver, nfe=6, shapes={"pos": (2, 4, 3), "types": (2, 4), "charges": (2, 4)},
                               mask=mask, generator=torch.Generator().manual_seed(0))
        assert info.nfe == len(calls) == 6 and all(c == ["charges", "pos", "types"] for c in calls)
        assert (x["charges"][mask].abs() <= 1).all() and x["charges"][mask].abs().min() > 0
        assert (x["charges"][~mask] == 0).all() and ((x["pos"] * mask.unsqueeze(-1)).sum(1)).abs().max() < 1e-12
        calls.clear()
