"""The shipped checkpoints: they load by name, their test-set L_inf matches the model card,
and the original BFN sampler at NFE 1000 draws recognisable digits / mostly-dictionary words.

The card values are read from the JSON block after ``<!-- bfnsolvers-card -->`` in
``checkpoints/<name>.md``; nothing is hard-coded here except loose pass thresholds.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

import bfnsolvers
from bfnsolvers.checkpoints import load_checkpoint
from bfnsolvers.train import evaluate_loss_inf, evaluation_set, process_hparams

CHECKPOINTS = Path(bfnsolvers.__file__).resolve().parents[1] / "checkpoints"
NAMES = ["digits-continuous", "digits-discretised", "text-discrete"]
CARD_BLOCK = re.compile(r"<!-- bfnsolvers-card -->\s*```json\n(.*?)\n```", re.S)


def card(name: str) -> dict:
    match = CARD_BLOCK.search((CHECKPOINTS / f"{name}.md").read_text())
    assert match, f"{name}.md has no '<!-- bfnsolvers-card -->' JSON block"
    return json.loads(match.group(1))


def shipped(name: str) -> None:
    if not (CHECKPOINTS / f"{name}.safetensors").is_file() or not (CHECKPOINTS / f"{name}.md").is_file():
        pytest.skip(f"{name} is not shipped in {CHECKPOINTS}")




@pytest.mark.parametrize("name", NAMES)
def test_loads_by_name_and_matches_card(name):
    shipped(name)
    info = card(name)
    path = CHECKPOINTS / f"{name}.safetensors"
    assert path.stat().st_size < 10 * 2**20
    model, process = load_checkpoint(name)
    assert process_hparams(process) == info["process"]
    assert sum(p.numel() for p in model.parameters()) == info["parameters"]


@pytest.mark.parametrize("name", NAMES)
def test_test_loss_matches_card(name):
    shipped(name)
    ev = card(name)["test_loss_inf"]
    model, process = load_checkpoint(name)
    x = evaluation_set(ev["data"], ev["items"], ev["seq_len"])
    value, stderr = evaluate_loss_inf(model, process, x, seed=ev["seed"], repeats=ev["repeats"])
    assert stderr == pytest.approx(ev["stderr"], rel=0.5)
    # same items and seed: equal up to float round-off; the tolerance allows for other
    # platforms' RNG / kernels (4 standard errors of the card's Monte-Carlo estimate)
    assert abs(value - ev["nats_per_dim"]) <= 4 * ev["stderr"], (value, ev)


@pytest.mark.slow
@torch.no_grad()
@pytest.mark.parametrize("name", ["digits-continuous", "digits-discretised"])
def test_digit_samples_are_recognised(name):
    shipped(name)
    from bfnsolvers.metrics import load_digits_classifier
    from bfnsolvers.sampling import sample

    model, process = load_checkpoint(name)
    x, info = sample(model, process, solver="bfn", nfe=1000, shape=(32, 8, 8, 1),
                     generator=torch.Generator().manual_seed(1))
    assert info.nfe == 1000 and x.shape == (32, 8, 8, 1)
    probs = torch.softmax(load_digits_classifier()(x.clamp(-1, 1)), -1)
    confident = (probs.max(-1).values >= 0.9).sum().item()
    # card: 0.80 (continuous) / 0.94 (discretised) confidently one digit; P(< 16 of 32 | p = 0.7) ~ 0.003
    assert confident >= 16, probs.max(-1).values
    # pixel statistics close to the data's (samples are not noise or blank)
    from bfnsolvers.data import load_digits_images

    data = load_digits_images("test")
    assert abs(x.mean().item() - data.mean().item()) < 0.25


@pytest.mark.slow
@torch.no_grad()
def test_text_samples_have_dictionary_words():
    name = "text-discrete"
    shipped(name)
    from bfnsolvers.data import tokens_to_text
    from bfnsolvers.metrics import load_vocabulary
    from bfnsolvers.metrics.text import split_words
    from bfnsolvers.sampling import sample

    model, process = load_checkpoint(name)
    seq_len = model.data_shape[0]
    tokens, info = sample(model, process, solver="bfn", nfe=1000, shape=(4, seq_len),
                          generator=torch.Generator().manual_seed(1))
    assert info.nfe == 1000

    vocab = load_vocabulary()

    def fraction(texts: list[str]) -> float:
        """Dictionary fraction of words of >= 2 letters (every single letter is in the vocabulary)."""
        words = [w for t in texts for w in split_words(t) if len(w) >= 2]
        return sum(w in vocab for w in words) / max(len(words), 1)

    ours = fraction(tokens_to_text(tokens))
    gen = torch.Generator().manual_seed(0)
    uniform = fraction(tokens_to_text(torch.randint(0, 27, (256, seq_len), generator=gen)))
    # random characters with the corpus' letter frequencies (spaces included): short words, some real
    from bfnsolvers.data import load_text_tokens

    freq = torch.bincount(load_text_tokens("train"), minlength=27).double()
    unigram = fraction(tokens_to_text(torch.multinomial(freq, 256 * seq_len, True, generator=gen).view(256, seq_len)))
    assert uniform < 0.1 and unigram < 0.25
    assert ours > uniform + 0.2 and ours > unigram + 0.1, (ours, uniform, unigram, tokens_to_text(tokens))
    # the card's 64 samples (NFE 1000, original sampler) are mostly dictionary words
    assert math.isfinite(card(name)["samples"]["dictionary_word_fraction"])
    assert card(name)["samples"]["dictionary_word_fraction"] > 0.5
