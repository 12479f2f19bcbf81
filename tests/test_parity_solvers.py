"""Parity with the official BFN-Solver trajectories in tests/data/testvectors/solver_vectors.*.

Each official run is replayed from its initial state with its recorded noise (and categorical draws)
through our solver functions; every intermediate state must match to relative error < 1e-3.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from bfnsolvers import Denoiser, get_solver, load_checkpoint
from bfnsolvers.schedules import uniform_t
from helpers import TESTVECTORS, rel_err

# official algorithm -> our solver (same formula; see each solver's docstring)
IMAGE = {"ode_bfnsolver1": "bfn-solver1", "ode_bfnsolver2_multi_step": "bfn-solver++2",
         "sde_euler": "euler-maruyama", "sde_bfnsolver2_multi_step": "sde-bfn-solver++2"}
TEXT = {"ode_bfnsolver1": "bfn-solver++1", "ode_bfnsolver2_multi_step": "bfn-solver2-s", "ode_euler": "euler",
        "sde_bfnsolver1": "sde-bfn-solver++1", "sde_bfnsolver2_multi_step": "sde-bfn-solver2-s"}
NOT_REPRODUCED = {
    "sde_euler": "official text sde_euler returns the network logits as the next state (defect 1 in the vectors' "
                 "README); our euler-maruyama is checked against the official image sde_euler instead",
}


def _runs(domain: str) -> list[dict]:
    path = TESTVECTORS / "solver_vectors.json"
    return json.loads(path.read_text())[domain]["runs"]


@pytest.fixture(scope="module")
def vectors(request):
    meta = {n: json.loads((TESTVECTORS / f"{n}.json").read_text()) for n in ("unet_vdm_c", "gpt_text8")}
    models = {n: load_checkpoint(TESTVECTORS / f"{n}.state_dict.safetensors", meta[n]["small_config_solver_schema"])
              for n in meta}
    return load_file(str(TESTVECTORS / "solver_vectors.safetensors")), models


class OfficialPredictions:
    """A model that returns the official run's data predictions, step by step."""

    def __init__(self, preds: torch.Tensor, output_type: str):
        self.preds, self.output_type = iter(preds), output_type

    def __call__(self, params, t):
        return next(self.preds).to(params.dtype)


def replay(vectors, run, model_name, solver, forced: bool):
    """Run our solver from the official start with the official noise; return (our states, official states)."""
    tensors, models = vectors
    model, process = models[model_name]
    key, n, eta = run["key"], run["n_steps"], run["eta"]
    official = tensors[f"{key}/states"]
    ts = uniform_t(n, eta)
    if run["last_drop"]:
        ts = ts[:-1]
    if forced:
        preds = tensors[f"{key}/x0_preds"] if model_name == "unet_vdm_c" else tensors[f"{key}/data_preds"]
        model = OfficialPredictions(preds, "x" if model_name == "unet_vdm_c" else "probs")
    noise = iter(tensors[f"{key}/noise"]) if run["stochastic"] else None
    states = []
    denoiser = Denoiser(model, process)
    options = {"noise_sampler": lambda z: next(noise)} if get_solver(solver).stochastic else {}
    z = get_solver(solver)(denoiser, official[0].clone(), ts, callback=lambda info: states.append(info["z"]), **options)
    return states + [z], official, denoiser, ts


@pytest.mark.parametrize("run", [r for r in _runs("image")], ids=lambda r: r["key"])
def test_image_solver_parity(vectors, run):
    solver = IMAGE[run["algorithm"]]
    ours, official, _, _ = replay(vectors, run, "unet_vdm_c", solver, forced=True)
    for k in range(len(ours)):
        assert rel_err(ours[k], official[k]) < 1e-5, (k, rel_err(ours[k], official[k]))
    model, process = vectors[1]["unet_vdm_c"]
    denoiser, ts = Denoiser(model, process), uniform_t(run["n_steps"], run["eta"])
    preds = vectors[0][f"{run['key']}/x0_preds"]
    for k in range(len(preds)):   # the network's clipped x0_hat at every official state
        tol = 1e-5 * max(1.0, (process.s(ts[k]) / process.a(ts[k])).item())
        assert rel_err(denoiser(official[k], ts[k]), preds[k]) < tol


@pytest.mark.parametrize("run", [r for r in _runs("text") if r["algorithm"] != "ode_bfnsolver2_single_step"],
                         ids=lambda r: r["key"])
def test_text_solver_parity(vectors, run):
    algorithm = run["algorithm"]
    if algorithm in NOT_REPRODUCED:
        pytest.skip(NOT_REPRODUCED[algorithm])
    # the official SDE solver with a sampled (one-hot) class is the original BFN sampler
    solver = "bfn" if run["cate_samp"] else TEXT[algorithm]
    ours, official, _, _ = replay(vectors, run, "gpt_text8", solver, forced=True)
    for k in range(len(ours) - run["addi_step"]):     # with addi_step the official last state is logits
        assert rel_err(ours[k], official[k]) < 1e-5, (k, rel_err(ours[k], official[k]))
    if run["cate_samp"]:
        return   # free-running would draw its own classes
    ours, official, denoiser, ts = replay(vectors, run, "gpt_text8", solver, forced=False)
    tokens = vectors[0][f"{run['key']}/final_tokens"]
    batch = ours[-1].shape[0]
    if run["last_drop"]:      # the final state is the network's logits at the last-but-one grid time
        logits = denoiser.model(torch.softmax(ours[-1], -1), ts[-1].float().expand(batch))
        assert torch.equal(logits.argmax(-1), tokens)
    elif run["addi_step"]:    # one more network call at t = 1, tokens from its logits
        logits = denoiser.model(torch.softmax(ours[-1], -1), torch.ones(batch))
        assert torch.equal(logits.argmax(-1), tokens)
    else:
        assert torch.equal(ours[-1].argmax(-1), tokens)


@pytest.mark.parametrize("run", [r for r in _runs("text") if r["algorithm"] == "ode_bfnsolver2_single_step"],
                         ids=lambda r: r["key"])
def test_text_midpoint_parity(vectors, run):
    """The official run records only the midpoint predictions, so it cannot be teacher-forced; each step is
    replayed instead from the official state with our network (whose outputs match to ~1e-6). With
    last_drop the official final state is the network's logits at the midpoint of the last step: our
    final="drop" reads out at the last-but-one grid time instead, so that state is checked directly."""
    tensors, models = vectors
    model, process = models["gpt_text8"]
    denoiser = Denoiser(model, process)
    official, n = tensors[f"{run['key']}/states"], run["n_steps"]
    ts = uniform_t(n, run["eta"])
    solver = get_solver("bfn-solver2-midpoint")
    steps = n - 1 if run["last_drop"] else n
    for k in range(steps):
        ours = solver(denoiser, official[k].clone(), ts[k:k + 2])
        assert rel_err(ours, official[k + 1]) < 1e-5, (k, rel_err(ours, official[k + 1]))
    if run["last_drop"]:
        t0, t1 = ts[n - 1].item(), ts[n].item()
        tm = 0.5 * (t0 + t1)
        x0 = denoiser(official[n - 1], ts[n - 1])
        y_m = (tm / t0) * official[n - 1] + process.beta_1 * tm * (tm - t0) * x0
        logits = model(torch.softmax(y_m, -1), torch.full((y_m.shape[0],), tm))
        assert rel_err(logits, official[n]) < 1e-5
