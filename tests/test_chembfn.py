"""ChemBFN (bayesianflow_for_chem) in bfnsolvers: ChemBFN's own samplers reproduced token for token with
the same noise, on the tiny random-weight ChemBFN in tests/data/chembfn/ (stored reference outputs of the
package, and live calls of the package with other sizes, labels and token masks).

Why tokens are compared exactly and states to a tolerance: ChemBFN updates theta <- e^y theta / sum
directly, bfnsolvers keeps the summed sender samples z and uses softmax(z); its grid is (i - 1)/n from
linspace(1, n, n), ours linspace(0, 1, n + 1); beta is float32 there and float64 here. These differ
by float rounding (~1e-7 relative). ``chembfn_grid`` reproduces ChemBFN's float32 times exactly; beta stays
float64 here. The BFN sampler's final entropies then agree to ~2e-6 (tolerance 1e-5). ChemBFN's ODE:T
redraws the state from p every step, and on this random-weight model it amplifies rounding: entropies
agree to ~3e-5 (tolerance 1e-4), and with strong guidance over 20 steps the trajectories are chaotic:
there the package's own algorithm replayed with float64 beta (all else equal) moves as far from the
package as we do, and we equal that replay (test_guided_ode_difference_is_beta_rounding).
"""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bfnsolvers import Denoiser, DiscreteBFN, sample
from bfnsolvers.oracles import MarkovChainOracle, _dirichlet

DATA = Path(__file__).parent / "data" / "chembfn"
HAVE_CHEM = importlib.util.find_spec("bayesianflow_for_chem") is not None
needs_chem = pytest.mark.skipif(not HAVE_CHEM, reason='ChemBFN is not installed (pip install "bfnsolvers[chem]")')
ENTROPY_TOL = 1e-5      # BFN sampler
ODE_TOL = 1e-4          # ODE:T sampler (see the module docstring)


@pytest.fixture(scope="module")
def tiny():
    from bfnsolvers.integrations.chembfn import load_chembfn
    from safetensors.torch import load_file
    model, process = load_chembfn(DATA / "tiny.pt")
    return model, process, load_file(str(DATA / "tiny-reference.safetensors"))


def ours(model, process, solver, batch, length, n, seed, y=None, w=0.0, mask=None, **options):
    """bfnsolvers on ChemBFN's grid: (tokens, entropy of the final p before the mask, as ChemBFN reports)."""
    from bfnsolvers.integrations.chembfn import chembfn_grid
    x, info = sample(model, process, solver, schedule=chembfn_grid(n), final="denoise", readout_as="mode",
                     shape=(batch, length), generator=torch.Generator().manual_seed(seed), cond=y, guidance=w,
                     class_mask=mask, return_trajectory=True, **options)
    assert info.nfe == n + 1
    den = Denoiser(model, process).configure(batch, cond=y, guidance=w)
    with torch.no_grad():
        p = den.output(info.trajectory[-1], 1.0).probs
    return x, -torch.special.xlogy(p, p).sum(-1).mean(-1)


def theirs(net, method, batch, length, n, seed, y=None, w=4.0, token_mask=None, T=0.5):
    torch.manual_seed(seed)
    if method == "BFN":
        return net.sample(batch, length, y, sample_step=n, guidance_strength=w, token_mask=token_mask)
    return net.ode_sample(batch, length, y, sample_step=n, guidance_strength=w, token_mask=token_mask, temperature=T)


@needs_chem
def test_wrapper_and_process_match_chembfn(tiny):
    model, process, ref = tiny
    K = model.net.K
    assert K == 246 and process.num_classes == K
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.allclose(process.beta(t), model.net.calc_beta(t), rtol=1e-6, atol=0)
    assert abs(process.beta_ref - 20.4054 / K) < 1e-8
    with torch.no_grad():
        logits = model(ref["logits_theta"], ref["logits_t"].reshape(-1))
    assert torch.allclose(logits, ref["logits"], rtol=0, atol=1e-5)


@needs_chem
def test_loss_inf_is_chembfns_training_loss(tiny):
    """process.loss_inf (the L_inf of evaluate_nll) equals ChemBFN's own cts_loss summed over tokens and
    classes, given the same t and the same noise: K (e_x - e_hat)^2 alpha(t) / 2 with its schedule."""
    model, process, _ = tiny
    x = torch.randint(0, model.net.K, (6, 12), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(7)
    t = torch.rand(6, generator=gen)                       # loss_inf draws t first, then the flow's noise
    torch.set_rng_state(gen.get_state())
    with torch.no_grad():
        theirs_, _ = model.net.cts_loss(x, t.reshape(-1, 1, 1), None, reduction="none")
        ours_ = process.loss_inf(model, x, torch.Generator().manual_seed(7))
    assert torch.allclose(ours_, theirs_.sum((-1, -2)), rtol=1e-4, atol=1e-6)


@needs_chem
def test_bfn_mode_reproduces_chembfn_sample(tiny):
    model, process, ref = tiny
    tok, ent = ours(model, process, "bfn", 4, 12, 10, 0, draw="mode")
    assert torch.equal(tok, ref["sample_tokens"])
    assert (ent - ref["sample_entropy"]).abs().max() < ENTROPY_TOL
    # the original sampler's draw (Graves et al.) is a different sampler: not the same tokens
    other, _ = ours(model, process, "bfn", 4, 12, 10, 0)
    assert not torch.equal(other, ref["sample_tokens"])
    # live, other sizes and step counts
    for batch, length, n, seed in ((8, 20, 25, 11), (3, 7, 3, 5)):
        t_tok, t_ent = theirs(model.net, "BFN", batch, length, n, seed)
        tok, ent = ours(model, process, "bfn", batch, length, n, seed, draw="mode")
        assert torch.equal(tok, t_tok), (batch, length, n)
        assert (ent - t_ent).abs().max() < ENTROPY_TOL


@needs_chem
def test_guided_bfn_mode_reproduces_chembfn(tiny):
    model, process, ref = tiny
    tok, ent = ours(model, process, "bfn", 2, 12, 10, 2, y=ref["guided_y"], w=4.0, draw="mode")
    assert torch.equal(tok, ref["guided_tokens"])
    assert (ent - ref["guided_entropy"]).abs().max() < ENTROPY_TOL
    y = torch.randn((5, 16), generator=torch.Generator().manual_seed(9))
    for w in (0.0, 1.5):
        t_tok, t_ent = theirs(model.net, "BFN", 5, 15, 12, 3, y=y, w=w)
        tok, ent = ours(model, process, "bfn", 5, 15, 12, 3, y=y, w=w, draw="mode")
        assert torch.equal(tok, t_tok) and (ent - t_ent).abs().max() < ENTROPY_TOL, w
    unguided, _ = ours(model, process, "bfn", 5, 15, 12, 3, draw="mode")
    assert not torch.equal(unguided, tok)          # the label matters on this model


@needs_chem
def test_guidance_with_an_mlp_label_head(tiny):
    from bayesianflow_for_chem import MLP
    from bfnsolvers.integrations.chembfn import from_chembfn
    model, _, _ = tiny
    torch.manual_seed(0)
    mlp = MLP([2, 8, 16])
    for p in mlp.parameters():
        torch.nn.init.normal_(p, std=0.2)
    wrapped, process = from_chembfn(model.net, mlp.eval())
    values = torch.tensor([[0.3, -1.0], [1.2, 0.4], [-0.5, 0.9]])
    with torch.no_grad():
        y = mlp(values)
    t_tok, t_ent = theirs(model.net, "ODE", 3, 14, 8, 21, y=y, w=2.0)
    tok, ent = ours(wrapped, process, "chembfn-ode", 3, 14, 8, 21, y=values, w=2.0)
    assert torch.equal(tok, t_tok) and (ent - t_ent).abs().max() < ODE_TOL
    t_tok, t_ent = theirs(model.net, "BFN", 3, 14, 20, 22, y=y, w=2.0)
    tok, ent = ours(wrapped, process, "bfn", 3, 14, 20, 22, y=values, w=2.0, draw="mode")
    assert torch.equal(tok, t_tok) and (ent - t_ent).abs().max() < ENTROPY_TOL


@needs_chem
def test_chembfn_ode_reproduces_ode_sample(tiny):
    model, process, ref = tiny
    tok, ent = ours(model, process, "chembfn-ode", 4, 12, 10, 0, ode_temperature=0.5)
    assert torch.equal(tok, ref["ode_sample_tokens"])
    assert (ent - ref["ode_sample_entropy"]).abs().max() < ODE_TOL
    for T, n in ((1.0, 17), (0.2, 5), (0.0, 6)):
        t_tok, t_ent = theirs(model.net, "ODE", 6, 18, n, 13, T=T) if T > 0 else (None, None)
        tok, ent = ours(model, process, "chembfn-ode", 6, 18, n, 13, ode_temperature=T)
        if T > 0:                                   # ChemBFN refuses T = 0 (its CLI needs T > 0)
            assert torch.equal(tok, t_tok) and (ent - t_ent).abs().max() < ODE_TOL, T
        else:                                       # T = 0: deterministic, no dependence on the seed
            again, _ = ours(model, process, "chembfn-ode", 6, 18, n, 99, ode_temperature=0.0)
            assert torch.equal(tok, again)


@needs_chem
def test_token_masks_reproduce_chembfn(tiny):
    from bayesianflow_for_chem.data import VOCAB_KEYS
    from bfnsolvers.integrations.chembfn import class_mask_from_token_mask, class_mask_from_tokens
    model, process, _ = tiny
    allowed = ["<pad>", "<start>", "<end>", "C", "c", "N", "O", "(", ")", "=", "1", "2"]
    forbidden = torch.tensor([[[k not in allowed for k in VOCAB_KEYS]]])
    mask = class_mask_from_tokens(allowed)
    assert torch.equal(mask, class_mask_from_token_mask(forbidden)) and int(mask.sum()) == len(allowed)
    t_tok, t_ent = theirs(model.net, "BFN", 6, 16, 10, 4, token_mask=forbidden)
    tok, ent = ours(model, process, "bfn", 6, 16, 10, 4, mask=mask, draw="mode")
    assert torch.equal(tok, t_tok) and mask[tok].all() and (ent - t_ent).abs().max() < ENTROPY_TOL
    t_tok, t_ent = theirs(model.net, "ODE", 6, 16, 10, 4, token_mask=forbidden, T=0.5)
    tok, ent = ours(model, process, "chembfn-ode", 6, 16, 10, 4, mask=mask)
    assert torch.equal(tok, t_tok) and mask[tok].all() and (ent - t_ent).abs().max() < ODE_TOL
    # the exact restriction (renormalised) is another sampler: on this random model it changes tokens
    renorm, _ = ours(model, process, "chembfn-ode", 6, 16, 10, 4, mask=mask, renormalise_mask=True)
    assert mask[renorm].all() and not torch.equal(renorm, t_tok)


def replay_ode(net, process, batch, length, n, seed, y, w, T, float64_beta):
    """ChemBFN's ODE:T from docs/chembfn-facts.md Sec. 6.2 (network calls only), with beta in float32 as the
    package computes it (beta(t + 1/n) from ChemBFN's float32 t) or in float64 on the same grid."""
    K, g = net.K, torch.Generator().manual_seed(seed)
    z = torch.zeros(batch, length, K)

    def probs(z, t):
        x, t = 2 * torch.softmax(z, -1) - 1, t.repeat(batch, 1, 1)
        return torch.softmax((1 + w) * net(x, t, None, y[:, None, :]) - w * net(x, t, None, None), -1)

    grid = (torch.linspace(1, n, n) - 1) / n
    with torch.no_grad():
        for i in range(n):
            b = (float(process.beta(torch.tensor(float(grid[i + 1]) if i + 1 < n else 1.0, dtype=torch.float64)))
                 if float64_beta else net.calc_beta(grid[i].repeat(batch, 1, 1) + 1 / n))
            p = probs(z, grid[i])
            z = b * (K * p - 1) + (K * b * T) ** 0.5 * torch.randn(z.shape, generator=g)
        p = probs(z, torch.tensor(1.0))
    return p.argmax(-1), -(p * p.log()).sum(-1).mean(-1)


@needs_chem
def test_guided_ode_difference_is_beta_rounding(tiny):
    """Guided ODE:T, w = 2, 20 steps, on the random tiny model: chaotic, so tokens differ from the package.
    The facts' algorithm with the package's float32 beta is the package bit for bit; with float64 beta
    (what bfnsolvers' process computes) it moves as far, and bfnsolvers equals that replay."""
    model, process, _ = tiny
    y = 0.5 * torch.randn((3, 16), generator=torch.Generator().manual_seed(5))
    t_tok, t_ent = theirs(model.net, "ODE", 3, 14, 20, 21, y=y, w=2.0)
    r32_tok, r32_ent = replay_ode(model.net, process, 3, 14, 20, 21, y, 2.0, 0.5, float64_beta=False)
    assert torch.equal(r32_tok, t_tok) and torch.equal(r32_ent, t_ent)
    r64_tok, r64_ent = replay_ode(model.net, process, 3, 14, 20, 21, y, 2.0, 0.5, float64_beta=True)
    tok, ent = ours(model, process, "chembfn-ode", 3, 14, 20, 21, y=y, w=2.0)
    assert torch.equal(tok, r64_tok) and (ent - r64_ent).abs().max() < ODE_TOL
    drift = (r64_ent - t_ent).abs().max()
    print(f"\nguided ODE:0.5, 20 steps: |entropy(float64 beta) - package| = {drift:.2e}, "
          f"tokens equal {(tok == t_tok).float().mean():.3f}")


@needs_chem
def test_decoding_matches_chembfn_tool(tiny):
    from bayesianflow_for_chem.data import VOCAB_KEYS
    from bayesianflow_for_chem.tool import _token_to_seq
    from bfnsolvers.integrations.chembfn import smiles_to_tokens, tokens_to_smiles
    _, _, ref = tiny
    for tok in (ref["sample_tokens"], ref["ode_sample_tokens"], ref["inpaint_tokens"]):
        assert tokens_to_smiles(tok) == _token_to_seq(tok, torch.zeros(len(tok)), VOCAB_KEYS, "", False)
    smiles = ["CCOc1ccccc1", "CC(=O)Nc1ccc(O)cc1", "C[C@@H](N)C(=O)O"]
    tok = smiles_to_tokens(smiles, 30)
    assert tok.shape == (3, 30) and (tok[:, 0] == 1).all()
    assert tokens_to_smiles(tok) == smiles


@needs_chem
def test_bad_input_raises_value_error_naming_the_argument(tiny, tmp_path):
    from bfnsolvers.integrations.chembfn import (chembfn_grid, class_mask_from_token_mask, class_mask_from_tokens,
                                                 from_chembfn, load_chembfn, smiles_to_tokens, tokens_to_smiles)
    model, process, _ = tiny
    with pytest.raises(ValueError, match="model"):
        from_chembfn(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="path"):
        load_chembfn(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="n must"):
        chembfn_grid(0)
    with pytest.raises(ValueError, match="allowed"):
        class_mask_from_tokens(["C", "not-a-token"])
    with pytest.raises(ValueError, match="token_mask"):
        class_mask_from_token_mask(torch.zeros(246))
    with pytest.raises(ValueError, match="tokens"):
        tokens_to_smiles(torch.full((1, 3), 999))
    with pytest.raises(ValueError, match="length"):
        smiles_to_tokens(["CCCCCC"], 3)
    with pytest.raises(ValueError, match="ode_temperature"):
        ours(model, process, "chembfn-ode", 1, 4, 2, 0, ode_temperature=-1.0)
    with pytest.raises(ValueError, match="y"):
        model(torch.full((2, 4, 246), 1 / 246), torch.zeros(2), torch.zeros(2, 3, 16))


def test_import_without_chembfn_names_the_extra():
    code = ("import sys; sys.modules['bayesianflow_for_chem'] = None\n"
            "try:\n    import bfnsolvers.integrations.chembfn\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "bfnsolvers[chem]"' in out


def test_chembfn_ode_step_is_the_flow_draw_with_p():
    """Without the package: every state is beta(t') (K p - 1) + sqrt(K beta(t') T) eps, p from the model at the
    previous state, eps the noise in draw order; a class mask zeroes p unrenormalised (ChemBFN) by default."""
    K = 5
    process = DiscreteBFN(0.8, K)
    oracle = MarkovChainOracle(process, _dirichlet((1, K), 1.0, 0)[0], _dirichlet((K, K), 1.0, 1), 4)
    ts = torch.linspace(0, 1, 7)
    allowed = torch.tensor([True, False, True, True, False])
    for T, mask, renorm in ((0.5, None, False), (1.3, allowed, False), (0.7, allowed, True)):
        states = []
        x, _ = sample(oracle, process, "chembfn-ode", schedule=ts, final="denoise", shape=(3, 4), class_mask=mask,
                      generator=torch.Generator().manual_seed(3), callback=lambda i: states.append(i["z"]),
                      return_trajectory=True, ode_temperature=T, renormalise_mask=renorm)
        g = torch.Generator().manual_seed(3)
        den = Denoiser(oracle, process).configure(3, class_mask=None if (mask is None or not renorm) else mask)
        z = torch.zeros(3, 4, K)
        for i in range(len(ts) - 1):
            assert torch.allclose(states[i], z, atol=1e-5), (T, i)
            with torch.no_grad():
                p = den.output(z, ts[i]).probs
            if mask is not None and not renorm:
                p = p * mask
            b = float(process.beta(ts[i + 1]))
            z = b * (K * p - 1) + (K * b * T) ** 0.5 * torch.randn(z.shape, generator=g)
        if mask is not None:
            assert mask[x].all()


@needs_chem
def test_nll_bench_retokenises_and_scores(tiny):
    """benchmarks/chembfn_nll.py: strings -> ChemBFN's tokens padded to the length (too long: skipped), and
    its per-cell summary is evaluate_nll's (per molecule and per position)."""
    import runpy
    from types import SimpleNamespace
    from bfnsolvers.integrations.chembfn import smiles_to_tokens, tokens_to_smiles
    from bfnsolvers.train import evaluate_nll
    mod = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "chembfn_nll.py"))
    model, process, _ = tiny
    smiles = ["CCO", "c1ccccc1Cl", "C" * 40, "[nH]1cccc1"]
    x, kept = mod["retokenise"](smiles, 20)
    assert kept == [0, 1, 3] and x.shape == (3, 20)
    assert torch.equal(x[1, :11], smiles_to_tokens(["c1ccccc1Cl"])[0]) and not x[1, 11:].any()
    assert tokens_to_smiles(x) == [smiles[i] for i in kept]
    args = SimpleNamespace(seed=3, repeats=2, batch=2)
    m, per = mod["score"](model, process, x, 20, args)
    est = evaluate_nll(model, process, x, seed=3, repeats=2, batch_size=2)
    torch.testing.assert_close(per, est.nll)
    assert m["nll"] == pytest.approx(est.nll.mean().item()) and m["nll_per_pos"] == pytest.approx(m["nll"] / 20)
