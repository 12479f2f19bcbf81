"""Replay docs/chembfn-facts.md: re-implement ChemBFN's schedule, loss and both
samplers from the facts file (calling only the network's forward pass) and
check them against the package outputs stored in
tests/data/chembfn/tiny-reference.safetensors (written by make_tiny.py).

Run:  python benchmarks/chembfn/check_facts.py
"""

from __future__ import annotations

import math

import torch
from safetensors.torch import load_file


def beta(t, K, b1):
    return -4.0 / K * torch.log(1 - t + t * math.exp(-K * b1 / 4))


def alpha(t, K, b1):  # d beta / dt
    return 4.0 / K * (1 - math.exp(-K * b1 / 4)) / (1 - t + t * math.exp(-K * b1 / 4))


def out_dist(net, theta, t, y=None, w=4.0):
    if y is None:
        return torch.softmax(net(2 * theta - 1, t, None, None), -1)
    cond = net(2 * theta - 1, t, None, y[:, None, :])
    uncond = net(2 * theta - 1, t, None, None)
    return torch.softmax((1 + w) * cond - w * uncond, -1)


@torch.no_grad()
def bfn_sample(net, B, L, n, K, b1, y=None, known=None):
    theta = torch.full((B, L, K), 1.0 / K)
    if known is not None:
        m = (known != 0).float()[..., None]
        ex = torch.nn.functional.one_hot(known, K).float() * m
        theta = ex + (1 - m) * theta
    for i in range(1, n + 1):
        t = torch.full((B, 1, 1), (i - 1) / n)
        p = out_dist(net, theta, t, y)
        a = beta(t + 1 / n, K, b1) - beta(t, K, b1)
        e = torch.nn.functional.one_hot(p.argmax(-1), K).float()
        ys = a * (K * e - 1) + (a * K).sqrt() * torch.randn(B, L, K)
        theta = ys.exp() * theta
        theta = theta / theta.sum(-1, keepdim=True)
        if known is not None:
            theta = ex + (1 - m) * theta
    p = out_dist(net, theta, torch.ones(B, 1, 1), y)
    return p.argmax(-1), -(p * p.log()).sum(-1).mean(-1)


@torch.no_grad()
def ode_sample(net, B, L, n, K, b1, T, known=None):
    z = torch.zeros(B, L, K)
    clamp = lambda th: th  # noqa: E731
    if known is not None:
        m = (known != 0).float()[..., None]
        ex = torch.nn.functional.one_hot(known, K).float() * m
        clamp = lambda th: ex + (1 - m) * th  # noqa: E731
    for i in range(1, n + 1):
        t = torch.full((B, 1, 1), (i - 1) / n)
        theta = clamp(torch.softmax(z, -1))
        b = beta(t + 1 / n, K, b1)
        p = out_dist(net, theta, t)
        z = b * (K * p - 1) + (K * b * T).sqrt() * torch.randn(B, L, K)
    p = out_dist(net, clamp(torch.softmax(z, -1)), torch.ones(B, 1, 1))
    return p.argmax(-1), -(p * p.log()).sum(-1).mean(-1)


@torch.no_grad()
def loss(net, x, t, K, b1):
    b = beta(t, K, b1)
    e = torch.nn.functional.one_hot(x, K).float()
    theta = torch.softmax(b * (K * e - 1) + (b * K).sqrt() * torch.randn(e.shape), -1)
    ehat = out_dist(net, theta, t)
    return (alpha(t, K, b1) / 2 * ((e - ehat) ** 2).sum(-1, keepdim=True)).mean()


def main() -> None:
    from bayesianflow_for_chem import ChemBFN

    net = ChemBFN.from_checkpoint("tests/data/chembfn/tiny.pt").eval()
    ref = load_file("tests/data/chembfn/tiny-reference.safetensors")
    K = net.K
    b1 = 20.4054 / K
    assert abs(float(net.beta) - b1) < 1e-7
    with torch.no_grad():
        lg = net(2 * ref["logits_theta"] - 1, ref["logits_t"], None, None)
    print("logits max |diff|", float((lg - ref["logits"]).abs().max()))
    torch.manual_seed(0)
    tok, ent = bfn_sample(net, 4, 12, 10, K, b1)
    print("BFN sampler: tokens equal", torch.equal(tok, ref["sample_tokens"]),
          "entropy max |diff|", float((ent - ref["sample_entropy"]).abs().max()))
    torch.manual_seed(0)
    tok, ent = ode_sample(net, 4, 12, 10, K, b1, 0.5)
    print("ODE sampler: tokens equal", torch.equal(tok, ref["ode_sample_tokens"]),
          "entropy max |diff|", float((ent - ref["ode_sample_entropy"]).abs().max()))
    torch.manual_seed(2)
    tok, ent = bfn_sample(net, 2, 12, 10, K, b1, y=ref["guided_y"])
    print("BFN sampler, guided: tokens equal", torch.equal(tok, ref["guided_tokens"]),
          "entropy max |diff|", float((ent - ref["guided_entropy"]).abs().max()))
    torch.manual_seed(3)
    tok, ent = bfn_sample(net, 2, 12, 10, K, b1, known=ref["inpaint_x"])
    print("inpaint: tokens equal", torch.equal(tok, ref["inpaint_tokens"]),
          "entropy max |diff|", float((ent - ref["inpaint_entropy"]).abs().max()))
    torch.manual_seed(4)
    tok, ent = ode_sample(net, 2, 12, 10, K, b1, 0.5, known=ref["inpaint_x"])
    print("ode_inpaint: tokens equal", torch.equal(tok, ref["ode_inpaint_tokens"]),
          "entropy max |diff|", float((ent - ref["ode_inpaint_entropy"]).abs().max()))
    torch.manual_seed(1)
    lo = loss(net, ref["loss_x"], ref["loss_t"], K, b1)
    print("cts_loss", float(lo), "package", float(ref["loss"]), "|diff|", abs(float(lo - ref["loss"])))


if __name__ == "__main__":
    main()
