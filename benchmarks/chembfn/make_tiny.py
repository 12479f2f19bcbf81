"""Make a tiny ChemBFN with random weights, in ChemBFN's own checkpoint format,
plus reference outputs of ChemBFN's own network and samplers for agreement tests.

Writes (under ``--out``, default ``tests/data/chembfn/``):

* ``tiny.pt`` -- ``{"nn": state_dict, "hparam": hparam}``, the format written by
  ChemBFN's training helper (``Model.export_model``) and read by
  ``ChemBFN.from_checkpoint``;
* ``tiny.safetensors`` -- the same state dict as safetensors (the hparam as
  string metadata);
* ``tiny-reference.safetensors`` -- inputs and outputs of the package's own code
  on this model (see ``REFERENCE`` below), with the settings in the metadata.

ChemBFN zero-initialises its output layer and every adaLN modulation layer, so a
freshly built model returns all-zero logits; that would make agreement tests
vacuous.  Every floating parameter is therefore redrawn here: weights (2-D)
from N(0, 1/fan_in), biases and other 1-D parameters from N(0, 0.1^2), from one
seeded generator, then reshaped so that the samples are diverse (see
``build``).  Buffers (``beta`` = 20.4054/K and the RoPE tables) are the
package's own.

Run:  python benchmarks/chembfn/make_tiny.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

HPARAM = {"num_vocab": 246, "channel": 16, "num_layer": 2, "num_head": 2, "dropout": 0.0}
SEED = 20240710
REFERENCE = """
logits:        forward(2*theta-1, t, None, None) for theta = softmax(3*randn(3, 12, K)), t = (0.1, 0.5, 0.9)
sample_*:      torch.manual_seed(0); ChemBFN.sample(4, 12, None, sample_step=10)  -> tokens, entropy
ode_sample_*:  torch.manual_seed(0); ChemBFN.ode_sample(4, 12, None, sample_step=10, temperature=0.5) -> tokens, entropy
guided_*:      torch.manual_seed(2); ChemBFN.sample(2, 12, guided_y, sample_step=10, guidance_strength=4.0), guided_y = randn(2, C) (seed 7)
inpaint_*:     torch.manual_seed(3); ChemBFN.inpaint(inpaint_x, None, sample_step=10) (0 = position to fill)
ode_inpaint_*: torch.manual_seed(4); ChemBFN.ode_inpaint(inpaint_x, None, sample_step=10, temperature=0.5)
loss:          torch.manual_seed(1); ChemBFN.cts_loss(x, t_loss, None) for x = tokens of two MOSES-like SMILES
"""


def build():
    from bayesianflow_for_chem import ChemBFN

    model = ChemBFN(**HPARAM)
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        # Make the samples depend on the input: the network input 2*theta - 1 is
        # close to -1 everywhere, so give the embedding columns zero mean over the
        # vocabulary and no bias; keep the (position-independent) adaLN
        # modulation small and the output layer without bias and a bit larger.
        model.embedding.weight.sub_(model.embedding.weight.mean(-1, keepdim=True))
        model.embedding.bias.zero_()
        model.final_layer.linear.weight.mul_(3.0)
        model.final_layer.linear.bias.zero_()
        for name, p in model.named_parameters():
            if "adaln" in name:
                p.mul_(0.1)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("tests/data/chembfn"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file
    from bayesianflow_for_chem import ChemBFN
    from bayesianflow_for_chem.data import collate, smiles2token

    model = build()
    K = model.K
    torch.save({"nn": model.state_dict(), "hparam": model.hparam}, args.out / "tiny.pt")
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, args.out / "tiny.safetensors", metadata={"hparam": json.dumps(model.hparam)})

    # check the round trip through ChemBFN's own loader
    loaded = ChemBFN.from_checkpoint(args.out / "tiny.pt").eval()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k]), k

    ref = {}
    g = torch.Generator().manual_seed(123)
    theta = torch.softmax(3 * torch.randn((3, 12, K), generator=g), -1)
    t = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1)
    with torch.no_grad():
        ref["logits_theta"] = theta
        ref["logits_t"] = t
        ref["logits"] = loaded(2 * theta - 1, t, None, None)
    torch.manual_seed(0)
    tok, ent = loaded.sample(4, 12, None, sample_step=10)
    ref["sample_tokens"], ref["sample_entropy"] = tok, ent
    torch.manual_seed(0)
    tok, ent = loaded.ode_sample(4, 12, None, sample_step=10, temperature=0.5)
    ref["ode_sample_tokens"], ref["ode_sample_entropy"] = tok, ent
    gy = torch.randn((2, model.hparam["channel"]), generator=torch.Generator().manual_seed(7))
    torch.manual_seed(2)
    tok, ent = loaded.sample(2, 12, gy, sample_step=10, guidance_strength=4.0)
    ref["guided_y"], ref["guided_tokens"], ref["guided_entropy"] = gy, tok, ent
    xi = torch.zeros((2, 12), dtype=torch.long)
    xi[:, :4] = smiles2token("CCO")[:4]  # <start> C C O, rest to fill
    xi[1, 6] = 151  # an aromatic c in the middle
    ref["inpaint_x"] = xi
    torch.manual_seed(3)
    ref["inpaint_tokens"], ref["inpaint_entropy"] = loaded.inpaint(xi, None, sample_step=10)
    torch.manual_seed(4)
    ref["ode_inpaint_tokens"], ref["ode_inpaint_entropy"] = loaded.ode_inpaint(
        xi, None, sample_step=10, temperature=0.5)
    x = collate([{"token": smiles2token(s)} for s in ("CCOc1ccccc1", "CC(=O)Nc1ccc(O)cc1")])["token"]
    t_loss = torch.tensor([0.3, 0.7]).view(2, 1, 1)
    torch.manual_seed(1)
    with torch.no_grad():
        loss, _ = loaded.cts_loss(x, t_loss, None)
    ref["loss_x"], ref["loss_t"], ref["loss"] = x, t_loss, loss.reshape(1)
    ref = {k: v.contiguous() for k, v in ref.items()}
    save_file(ref, args.out / "tiny-reference.safetensors",
              metadata={"hparam": json.dumps(model.hparam), "how": REFERENCE.strip()})
    for f in ("tiny.pt", "tiny.safetensors", "tiny-reference.safetensors"):
        print(f, (args.out / f).stat().st_size, "bytes")
    print("sample tokens", ref["sample_tokens"].tolist())
    print("loss", float(loss))


if __name__ == "__main__":
    main()
