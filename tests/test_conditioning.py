"""Any BFN: conditioning and guidance, constraints (inpainting, class masks, centre of mass),
temperature and noise scale, the original sampler's mode step, adapters, user-registered solvers."""
import pytest
import torch
from scipy import stats

from bfnsolvers import ContinuousBFN, Denoiser, DiscreteBFN, sample
from bfnsolvers.adapters import select_output, signed_input, without_time
from bfnsolvers.constraints import CentreOfMass, Inpaint
from bfnsolvers.oracles import ConditionalMixtureOracle, GaussianMixtureOracle, MarkovChainOracle, _dirichlet
from bfnsolvers.outputs import guide, mask_classes
from bfnsolvers.solvers import SOLVERS, register_solver
from bfnsolvers.solvers.ode import multistep_data_term
from helpers import chisquare_pvalue

F64 = torch.float64
P_VALUE = 1e-3          # two-sample / goodness-of-fit tests reject below this


def conditional_oracle():
    process = ContinuousBFN(1e-3, x_range=None)
    means = torch.tensor([[0.5, 0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, -0.5]], dtype=F64)
    weights = torch.tensor([[0.8, 0.2, 0.0, 0.0], [0.0, 0.1, 0.3, 0.6]])
    return ConditionalMixtureOracle(process, means, 0.1, weights), process


def as_x(fn):
    """A lambda returning the data prediction x (the oracle's output type)."""
    fn.output_type = "x"
    return fn


def nearest(x, means):
    return ((x[:, None] - means[None]) ** 2).sum(-1).argmin(-1)


def test_conditional_sampling_matches_the_exact_conditional():
    oracle, process = conditional_oracle()
    n = 2000
    label = torch.arange(n) % 2
    x, info = sample(oracle, process, "bfn-unipc3", nfe=30, shape=(n, 2), dtype=F64, cond=label,
                     generator=torch.Generator().manual_seed(0))
    for c in (0, 1):
        counts = torch.bincount(nearest(x[label == c], oracle.means), minlength=4).double()
        expected = oracle.label_weights[c] * counts.sum()
        keep = expected > 0
        assert counts[~keep].sum() <= 2                               # components the label excludes
        assert chisquare_pvalue(counts[keep], expected[keep]) > P_VALUE
    assert info.forward_batch_sizes == [n] * 30


def test_guidance_zero_is_bit_identical_and_passes_are_counted():
    oracle, process = conditional_oracle()
    label, kw = torch.tensor([0, 1, 1]), dict(nfe=8, shape=(3, 2), dtype=F64)
    plain, info = sample(oracle, process, "sde-bfn-solver++2", cond=label, generator=torch.Generator().manual_seed(1), **kw)
    zero, _ = sample(oracle, process, "sde-bfn-solver++2", cond=label, guidance=0.0, uncond=torch.full((3,), 2),
                     generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(plain, zero) and info.forward_passes == 8
    _, batched = sample(oracle, process, "sde-bfn-solver++2", cond=label, uncond=torch.full((3,), 2), guidance=1.5, **kw)
    assert batched.nfe == 8 and batched.forward_batch_sizes == [6] * 8
    _, null = sample(oracle, process, "sde-bfn-solver++2", cond=label, guidance=1.5, **kw)
    assert null.nfe == 8 and null.forward_batch_sizes == [3] * 16


def test_guided_prediction_is_the_stated_combination():
    oracle, process = conditional_oracle()
    z, t, w = torch.randn(5, 2, dtype=F64) * 0.1, torch.full((5,), 0.4, dtype=F64), 2.0
    label = torch.tensor([0, 1, 0, 1, 0])
    d = Denoiser(oracle, process).fork().configure(5, cond=label, uncond=torch.full((5,), 2), guidance=w)
    expected = (1 + w) * oracle(z, t, label) - w * oracle(z, t, torch.full((5,), 2))
    torch.testing.assert_close(d(z, t), expected, rtol=1e-12, atol=1e-12)
    # the null label of the model (uncond=None) is the unconditional call
    d_null = Denoiser(oracle, process).fork().configure(5, cond=label, guidance=w)
    torch.testing.assert_close(d_null(z, t), expected, rtol=1e-12, atol=1e-12)


def test_guidance_on_logits_tilts_the_distribution():
    lc, lu, w = torch.randn(4, 7), torch.randn(4, 7), 1.7
    pc, pu = lc.softmax(-1), lu.softmax(-1)
    tilted = pc ** (1 + w) * pu ** (-w)
    torch.testing.assert_close(guide(lc, lu, w, "logits").softmax(-1), tilted / tilted.sum(-1, keepdim=True))
    torch.testing.assert_close(guide(pc, pu, w, "probs"), tilted / tilted.sum(-1, keepdim=True))
    assert ((1 + w) * pc - w * pu).min() < 0          # why not on probabilities


def test_condition_as_tuple_and_dict_is_passed_through():
    oracle, process = conditional_oracle()
    label = torch.tensor([0, 1])
    ref, _ = sample(oracle, process, "bfn-solver++2", nfe=5, shape=(2, 2), dtype=F64, cond=label,
                    generator=torch.Generator().manual_seed(0))
    as_kw, _ = sample(as_x(lambda mu, t, *, label: oracle(mu, t, label)), process, "bfn-solver++2", nfe=5, shape=(2, 2),
                      dtype=F64, cond={"label": label}, generator=torch.Generator().manual_seed(0))
    as_tuple, _ = sample(as_x(lambda mu, t, lab, scale: oracle(mu, t, lab) * scale), process, "bfn-solver++2", nfe=5,
                         shape=(2, 2), dtype=F64, cond=(label, 1.0), generator=torch.Generator().manual_seed(0))
    assert torch.equal(ref, as_kw) and torch.equal(ref, as_tuple)


@pytest.mark.parametrize("kwargs, match", [
    (dict(cond=torch.zeros(3)), "cond: every tensor needs the batch size 2"),
    (dict(cond=torch.zeros(2), guidance=-1.0), "guidance must be a finite number >= 0"),
    (dict(guidance=1.0), "guidance needs cond"),
    (dict(cond=torch.zeros(2), uncond=torch.zeros(2, 1), guidance=1.0), "uncond must have cond's structure"),
    (dict(cond=[1, 2]), "cond must be a tensor, a tuple or a dict"),
    (dict(constraint=lambda z, t: z[:1]), r"constraint must return a tensor of the state's shape \(2, 2\)"),
    (dict(temperature=0.0), "temperature must be a positive"),
    (dict(temperature=0.5), "temperature applies to discrete outputs"),
    (dict(noise_scale=0.5), "noise_scale applies to the SDE solvers"),
])
def test_bad_conditioning_arguments(kwargs, match):
    oracle, process = conditional_oracle()
    with pytest.raises(ValueError, match=match):
        sample(as_x(lambda mu, t, *c: oracle(mu, t)), process, "bfn-solver++2", nfe=4, shape=(2, 2), **kwargs)


# --- inpainting ---------------------------------------------------------------------------------
def small_chain():
    process = DiscreteBFN(3.0, 5)
    return MarkovChainOracle(process, torch.ones(5, dtype=F64), _dirichlet((5, 5), 0.5, 0) + 1e-3, 8), process


@pytest.mark.parametrize("solver, nfe", [("bfn-unipc3-t", 40), ("sde-bfn-unipc3-t", 60), ("bfn", 100)])
def test_discrete_inpainting_matches_forward_backward_with_clamped_tokens(solver, nfe):
    oracle, process = small_chain()
    n, K, L, pos = 3000, 5, 8, [0, 3, 7]
    known = torch.zeros(n, L, dtype=torch.long)
    known[:, pos] = torch.tensor([1, 4, 2])
    mask = torch.zeros(n, L, dtype=torch.bool)
    mask[:, pos] = True
    emission = torch.zeros(1, L, K, dtype=F64)
    emission[0, pos] = -1e4
    emission[0, pos, known[0, pos]] = 0.0
    exact = oracle.log_marginals(emission).exp()[0]
    x, _ = sample(oracle, process, solver, nfe=nfe, shape=(n, L), dtype=F64, generator=torch.Generator().manual_seed(0),
                  constraint=Inpaint(process, known, mask, mode="pin"))
    assert torch.equal(x[mask], known[mask])
    free = [l for l in range(L) if l not in pos]
    chi2 = sum(stats.chisquare(torch.bincount(x[:, l], minlength=K).double(), n * exact[l]).statistic for l in free)
    assert stats.chi2.sf(chi2, (K - 1) * len(free)) > P_VALUE


def test_continuous_inpainting_holds_known_values_and_approximates_the_conditional():
    """The replacement method conditions the free coordinates on a noisy copy of the known ones: on this
    mixture it puts 0.64-0.67 of the mass on the component the exact conditional gives 0.70 (measured with
    bfn-unipc3 / SDE / original sampler, 2000 samples): approximate, and the docstring says so."""
    process = ContinuousBFN(1e-3, x_range=None)
    means = torch.tensor([[.5, .5, .5, .5], [.5, .5, -.5, -.5], [-.5, -.5, .5, -.5], [-.5, -.5, -.5, .5]], dtype=F64)
    oracle = GaussianMixtureOracle(process, means, 0.1, torch.tensor([0.7, 0.3, 0.5, 0.5]))
    n = 2000
    known = torch.zeros(n, 4, dtype=F64)
    known[:, :2] = torch.tensor([0.52, 0.45], dtype=F64)
    mask = torch.zeros(n, 4, dtype=torch.bool)
    mask[:, :2] = True
    x, _ = sample(oracle, process, "bfn-unipc3", nfe=30, shape=(n, 4), dtype=F64, generator=torch.Generator().manual_seed(0),
                  constraint=Inpaint(process, known, mask, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(x[mask], known[mask])
    share = torch.bincount(nearest(x[:, 2:], means[:, 2:]), minlength=4).double() / n
    log_w = torch.tensor([0.7, 0.3, 0.5, 0.5], dtype=F64).log() - ((known[0, :2] - means[:, :2]) ** 2).sum(-1) / 0.02
    exact = torch.softmax(log_w, 0)
    assert (share - exact).abs().max() < 0.1, (share, exact)


def test_inpaint_arguments():
    process = DiscreteBFN(3.0, 5)
    with pytest.raises(ValueError, match="mask must have known's shape"):
        Inpaint(process, torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mode='pin' is for discrete data"):
        Inpaint(ContinuousBFN(0.01), torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool), mode="pin")


# --- class masks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("solver, final", [("bfn", "denoise"), ("bfn-unipc3-t", "drop"), ("sde-bfn-unipc3-t", "state")])
def test_masked_classes_never_appear(solver, final):
    oracle, process = small_chain()
    allowed = torch.tensor([False, True, False, True, True])
    x, _ = sample(oracle, process, solver, nfe=12, shape=(500, 8), final=final, class_mask=allowed,
                  generator=torch.Generator().manual_seed(0), readout_as="sample")
    assert not torch.isin(x, torch.tensor([0, 2])).any()


def test_masked_output_is_the_exact_restriction_of_the_oracle():
    oracle, process = small_chain()
    allowed = torch.tensor([True, False, True, True, False])
    z, t = process.flow_sample(oracle.sample(6), 0.6, torch.Generator().manual_seed(2)).double(), torch.full((6,), 0.6, dtype=F64)
    d = Denoiser(oracle, process).fork().configure(6, class_mask=allowed)
    p = Denoiser(oracle, process).output(z, t).probs * allowed
    torch.testing.assert_close(d.output(z, t).probs, p / p.sum(-1, keepdim=True), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mask_classes(torch.tensor([[.2, .3, .5]]), torch.tensor([True, False, True]), "probs"),
                               torch.tensor([[.2 / .7, 0, .5 / .7]]))


# --- centre of mass -------------------------------------------------------------------------------
def test_centre_of_mass_holds_at_float_precision_and_padding_is_untouched():
    process = ContinuousBFN(0.01, x_range=None)
    node_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    seen = []

    def model(mu, t):
        seen.append(mu.clone())
        return torch.tanh(mu + 0.3)

    model.output_type = "x"
    x, _ = sample(model, process, "sde-bfn-solver++2", nfe=6, shape=(2, 5, 3), dtype=F64,
                  z_start=torch.zeros(2, 5, 3, dtype=F64) + 0.01 * torch.arange(30, dtype=F64).view(2, 5, 3),
                  constraint=CentreOfMass(node_mask), generator=torch.Generator().manual_seed(0))
    m = node_mask.unsqueeze(-1).double()
    for mu in seen + [x]:
        assert ((mu * m).sum(1) / m.sum(1)).abs().max() < 1e-12
    start_pad = (0.01 * torch.arange(30, dtype=F64).view(2, 5, 3))[1, 3:]
    assert torch.equal(seen[0][1, 3:], start_pad)


# --- temperature, noise scale, the original sampler's mode step ----------------------------------
def test_temperature_divides_the_logits():
    oracle, process = small_chain()
    z, t = torch.randn(3, 8, 5, dtype=F64), torch.full((3,), 0.5, dtype=F64)
    d = Denoiser(oracle, process).fork().configure(3, temperature=0.5)
    torch.testing.assert_close(d.output(z, t).probs, (oracle(z.softmax(-1), t) / 0.5).softmax(-1))


def test_noise_scale_zero_makes_the_sde_deterministic():
    oracle, process = small_chain()
    z0 = torch.randn(4, 8, 5, dtype=F64)
    runs = [sample(oracle, process, "sde-bfn-unipc3-t", nfe=8, z_start=z0, dtype=F64, noise_scale=0.0, final="state",
                   generator=torch.Generator().manual_seed(s))[0] for s in (0, 1)]
    assert torch.equal(*runs)


def test_original_sampler_mode_step_replays_by_hand():
    oracle, process = small_chain()
    z0 = torch.zeros(3, 8, 5, dtype=F64)
    x, _ = sample(oracle, process, "bfn", schedule=[0.0, 0.5, 1.0], final="state", z_start=z0, dtype=F64,
                  draw="mode", generator=torch.Generator().manual_seed(3))
    g, d, z = torch.Generator().manual_seed(3), Denoiser(oracle, process), z0
    for t0, t1 in ((0.0, 0.5), (0.5, 1.0)):
        x0 = process.to_x0(d.output(z, torch.tensor(t0, dtype=F64)).mode)
        z = process.bayes_step(z, x0, t0, t1, torch.randn(z.shape, generator=g, dtype=F64))
    assert torch.equal(x, z.argmax(-1))


# --- adapters and user solvers -------------------------------------------------------------------
def test_adapters_give_the_same_samples():
    oracle, process = small_chain()
    kw = dict(nfe=6, shape=(3, 8), dtype=F64)
    ref, _ = sample(oracle, process, "bfn-unipc3-t", generator=torch.Generator().manual_seed(0), **kw)
    tupled = select_output(lambda th, t: (oracle(th, t), "aux"))
    signed = signed_input(lambda s, t: oracle((s + 1) / 2, t))
    for adapted in (tupled, signed):
        out, _ = sample(adapted, process, "bfn-unipc3-t", generator=torch.Generator().manual_seed(0), **kw)
        assert torch.equal(out, ref)
    with pytest.raises(ValueError, match="select_output"):
        sample(lambda th, t: (oracle(th, t),), process, "bfn-unipc3-t", **kw)


def test_without_time_ignores_the_time():
    seen = []
    adapted = without_time(lambda th: seen.append(th.shape) or torch.zeros_like(th))
    sample(adapted, DiscreteBFN(1.0, 4), "bfn-unipc3-t", nfe=3, shape=(2, 6))
    assert seen == [(2, 6, 4)] * 3


def test_a_registered_solver_runs_through_sample():
    def my_ddim(model, z, ts, *, callback=None):
        """First-order data-prediction step, written by a user."""
        a, s, lam = model.process.a(ts), model.process.s(ts), model.process.lam(ts)
        for i in range(len(ts) - 1):
            x0 = model(z, ts[i])
            z = (s[i + 1] / s[i]) * z + a[i + 1] * multistep_data_term([(float(lam[i]), x0)], float(lam[i + 1]))
        return z

    oracle, process = conditional_oracle()
    try:
        register_solver("my-ddim", my_ddim, 1, "ode", "user DDIM")
        with pytest.raises(ValueError, match="already registered"):
            register_solver("my-ddim", my_ddim, 1, "ode", "again")
        kw = dict(nfe=7, shape=(4, 2), dtype=F64, cond=torch.tensor([0, 1, 0, 1]))
        mine, info = sample(oracle, process, "my-ddim", generator=torch.Generator().manual_seed(0), **kw)
        ref, _ = sample(oracle, process, "bfn-solver++1", generator=torch.Generator().manual_seed(0),
                        lower_order_final=False, **kw)
        torch.testing.assert_close(mine, ref, rtol=1e-10, atol=1e-10)
        assert info.solver == "my-ddim" and info.nfe == 7
    finally:
        SOLVERS.pop("my-ddim", None)
    with pytest.raises(ValueError, match="kind must be"):
        register_solver("x", my_ddim, 1, "pde", "bad")
