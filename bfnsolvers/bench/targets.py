"""What a sweep samples from and how it scores samples: the three exact oracles with their metrics and noise
floors, and the digits / text checkpoints with theirs (``resolve_target``)."""
from __future__ import annotations

import functools
import hashlib
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch import Tensor

from ..oracles import oracle_problem
from ..defaults import data_kind

__all__ = ["FLOOR_REPLICATES", "Metric", "ORACLE_NAMES", "ORACLE_PREFIX", "SweepTarget", "oracle_target",
           "resolve_target", "tag_generator"]

ORACLE_PREFIX = "oracle:"
ORACLE_NAMES = ("gmm", "discretised", "markov")
Better = Literal["lower", "higher", "zero", "floor"]
#: Independent exact sets whose metrics against the reference set average into an oracle's noise floor.
FLOOR_REPLICATES = 8


@dataclass(frozen=True)
class Metric:
    """A quality metric. better: "lower", "higher", "zero" (|value| lower) or "floor"
    (|value - noise floor| lower, e.g. an NLL whose exact-sample value is the entropy)."""

    name: str
    label: str
    better: Better = "lower"
    log_scale: bool = False


@dataclass
class SweepTarget:
    """What a sweep samples from and how it scores samples.

    evaluate(samples, seed) -> (metrics, noise floor, floor std): dicts over ``metrics``
    names; the floor is the same metric for exact/real samples of the same size (a mean
    over replicate sets where there are several, with their std; else the std dict is empty).
    """

    name: str
    model: Callable
    process: Any
    shape: tuple[int, ...]
    metrics: tuple[Metric, ...]
    evaluate: Callable[[Tensor, int], tuple[dict[str, float], dict[str, float], dict[str, float]]]
    primary: str
    description: str = ""
    floor_note: str = ""

def tag_generator(seed: int, tag: str) -> torch.Generator:
    """A CPU generator for one purpose (``tag``) of one seed (exact sets, projections, floors); the tag strings
    keep the prefix ``bfnsolvers.sweep`` so that recorded sweeps reproduce."""
    return torch.Generator().manual_seed(hash_seed(f"bfnsolvers.sweep|{tag}|{seed}"))


def hash_seed(text: str) -> int:
    """A 63-bit seed from a text (sha256)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2 ** 63 - 1)


def _move_tensors(obj: Any, device: torch.device) -> Any:
    """A shallow copy of ``obj`` with its tensor attributes on ``device`` (oracles on a GPU)."""
    if device.type == "cpu":
        return obj
    clone = object.__new__(type(obj))
    clone.__dict__.update({k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in vars(obj).items()})
    return clone


def oracle_target(name: str, device: torch.device) -> SweepTarget:
    """The exact oracle ``name`` (gmm, discretised, markov) with its metrics and noise floor, on ``device``."""
    oracle, process = oracle_problem(name)
    cache: dict[tuple[int, int], tuple[Tensor, dict, dict]] = {}

    def exact_sets(seed: int, n: int) -> tuple[Tensor, dict, dict]:
        """Exact set A (the reference) and the floor: mean and std of the metrics of
        FLOOR_REPLICATES more independent exact sets of the same size against A."""
        if (seed, n) not in cache:
            a = oracle.sample(n, tag_generator(seed, f"exact-a|{name}"))
            reps = [score(oracle.sample(n, tag_generator(seed, f"exact-b{r}|{name}")), a, seed)
                    for r in range(FLOOR_REPLICATES)]
            mean = {k: statistics.fmean(r[k] for r in reps) for k in reps[0]}
            std = {k: statistics.stdev(r[k] for r in reps) for k in reps[0]}
            cache.clear()
            cache[(seed, n)] = (a, mean, std)
        return cache[(seed, n)]

    def sw2(x: Tensor, ref: Tensor, seed: int) -> float:
        return sliced_w2(x, ref, n_projections=512, generator=tag_generator(seed, "projections"))

    from ..metrics import gmm_nll, markov_bigram_tv, markov_chain_nll, mode_coverage
    from ..metrics import sliced_wasserstein2 as sliced_w2

    if name == "gmm":
        metrics = (Metric("sw2", "sliced W2 to exact samples", "lower", True),
                   Metric("nll", "NLL under the exact density (nats/dim)", "floor"),
                   Metric("modes_covered", "fraction of modes covered", "higher"),
                   Metric("samples_near", "fraction of samples near a mode", "higher"))

        def score(x: Tensor, ref: Tensor, seed: int) -> dict:
            x = x.double().cpu()
            cov = mode_coverage(x, oracle.means, oracle.std)
            return {"sw2": sw2(x, ref, seed), "nll": gmm_nll(x, oracle.means, oracle.std, oracle.weights, per_dim=True),
                    "modes_covered": cov.modes_covered, "samples_near": cov.samples_near}
        shape, model, primary = (oracle.dim,), oracle, "sw2"
    elif name == "discretised":
        metrics = (Metric("sw2", "sliced W2 to exact samples", "lower", True),
                   Metric("nll", "NLL under the exact distribution (nats/dim)", "floor"))

        def score(x: Tensor, ref: Tensor, seed: int) -> dict:
            x = x.double().cpu()
            return {"sw2": sw2(x, ref, seed), "nll": -oracle.log_prob(x).mean().item() / x.shape[1]}
        shape, model, primary = (oracle.probs.shape[0],), oracle, "sw2"
    else:
        entropy = oracle.entropy_rate()
        metrics = (Metric("entropy_gap", "NLL/token minus the chain's entropy rate (nats)", "zero"),
                   Metric("entropy_gap_abs", "|NLL/token minus the entropy rate| (nats; floor: mean over exact sets)",
                          "lower", True),
                   Metric("nll", "NLL under the exact chain (nats/token)", "floor"),
                   Metric("bigram_tv", "total variation of adjacent-pair frequencies to the exact pair probabilities",
                          "lower", True),
                   Metric("sw2_onehot", "sliced W2 of one-hot sequences to exact samples", "lower", True))

        def score(x: Tensor, ref: Tensor, seed: int) -> dict:
            x = x.long().cpu()
            nll = markov_chain_nll(x, oracle.init, oracle.trans)
            k = process.num_classes
            onehot = lambda s: torch.nn.functional.one_hot(s, k).flatten(1).double()  # noqa: E731
            return {"entropy_gap": nll - entropy, "entropy_gap_abs": abs(nll - entropy), "nll": nll,
                    "bigram_tv": markov_bigram_tv(x, oracle.init, oracle.trans),
                    "sw2_onehot": sw2(onehot(x), onehot(ref), seed)}
        shape, model, primary = (oracle.length,), oracle, "entropy_gap"

    def evaluate(samples: Tensor, seed: int) -> tuple[dict, dict, dict]:
        a, floor, floor_std = exact_sets(seed, samples.shape[0])
        return score(samples, a, seed), floor, floor_std

    desc = f"{type(oracle).__name__} (oracles.oracle_problem({name!r}))"
    note = (f"mean (and std) of the metrics of {FLOOR_REPLICATES} independent exact sample sets of the same size "
            "against the exact reference set the samples are scored against")
    return SweepTarget(ORACLE_PREFIX + name, _move_tensors(model, device), process, shape, metrics, evaluate,
                       primary, desc, note)


@functools.lru_cache(maxsize=1)
def _char_ngram():
    from ..data import load_text_tokens, tokens_to_text
    from ..metrics import CharNGram

    return CharNGram().fit(tokens_to_text(load_text_tokens("train")))


def _checkpoint_target(name: str, config: Any, device: torch.device) -> SweepTarget:
    from ..checkpoints import load_checkpoint

    try:
        model, process = load_checkpoint(name, config, device=device)
    except FileNotFoundError as exc:
        raise ValueError(f"target: {exc}") from exc
    data_shape = tuple(getattr(model, "data_shape", ()))
    kind = data_kind(process)
    if kind == "discrete" and len(data_shape) == 2 and process.num_classes == 27:
        return _text_target(name, model, process, data_shape[0])
    if kind != "discrete" and data_shape == (8, 8, 1):
        return _digits_target(name, model, process)
    raise ValueError(f"target: no metrics for checkpoint {name!r} ({kind} data of shape {data_shape}); "
                     "sweeps support 8x8x1 digits and 27-class text checkpoints")


def _digits_target(name: str, model: Any, process: Any) -> SweepTarget:
    from ..data import load_digits_images
    from ..metrics import digits_fd, load_digits_classifier

    classifier = load_digits_classifier()
    test, train = load_digits_images("test"), load_digits_images("train")
    floors: dict[tuple[int, int], dict] = {}

    def evaluate(samples: Tensor, seed: int) -> tuple[dict, dict]:
        n = samples.shape[0]
        if (seed, n) not in floors:
            idx = torch.randperm(len(train), generator=tag_generator(seed, "digits-floor"))[:min(n, len(train))]
            floors[(seed, n)] = {"fd": digits_fd(train[idx], test, classifier)}
        return {"fd": digits_fd(samples.float().cpu(), test, classifier)}, floors[(seed, n)], {}

    metric = Metric("fd", "Frechet digits distance to the test set (squared; not FID)", "lower", True)
    return SweepTarget(name, model, process, (8, 8, 1), (metric,), evaluate, "fd", f"digits checkpoint {name!r}",
                       "FD of min(N, 1500) random train images to the 297 test images")


def _text_target(name: str, model: Any, process: Any, seq_len: int) -> SweepTarget:
    from ..data import load_text_tokens, random_text_windows, tokens_to_text
    from ..metrics import spelling_accuracy

    floors: dict[tuple[int, int], dict] = {}

    def score(tokens: Tensor) -> dict:
        texts = tokens_to_text(tokens.long().cpu())
        return {"spelling_accuracy": spelling_accuracy(texts), "char_nll": _char_ngram().nll_per_char(texts)}

    def evaluate(samples: Tensor, seed: int) -> tuple[dict, dict]:
        n = samples.shape[0]
        if (seed, n) not in floors:
            real = random_text_windows(load_text_tokens("test"), seq_len, n, tag_generator(seed, "text-floor"))
            floors[(seed, n)] = score(real)
        return score(samples), floors[(seed, n)], {}

    metrics = (Metric("spelling_accuracy", "spelling accuracy (fraction of dictionary words)", "higher"),
               Metric("char_nll", "char 7-gram NLL, KJV train fit (nats/char)", "floor"))
    return SweepTarget(name, model, process, (seq_len,), metrics, evaluate, "spelling_accuracy",
                       f"text checkpoint {name!r}", f"N random windows of {seq_len} characters of the KJV test split")


def resolve_target(target: str | SweepTarget, *, config: Any = None, device: str | torch.device = "cpu") -> SweepTarget:
    """``oracle:gmm`` / ``oracle:discretised`` / ``oracle:markov``, a checkpoint name or path, or a SweepTarget."""
    if isinstance(target, SweepTarget):
        return target
    device = torch.device(device)
    if not isinstance(target, str) or not target:
        raise ValueError(f"target must be 'oracle:<name>' or a checkpoint name/path, got {target!r}")
    if target.startswith(ORACLE_PREFIX):
        name = target[len(ORACLE_PREFIX):]
        if name not in ORACLE_NAMES:
            raise ValueError(f"target: unknown oracle {name!r}; expected one of "
                             f"{[ORACLE_PREFIX + n for n in ORACLE_NAMES]}")
        return oracle_target(name, device)
    from ..checkpoints import resolve_checkpoint_path

    if not Path(resolve_checkpoint_path(target)).is_file():
        raise ValueError(f"target: {target!r} is neither an oracle ({', '.join(ORACLE_PREFIX + n for n in ORACLE_NAMES)}) "
                         "nor an existing checkpoint file or shipped checkpoint name")
    return _checkpoint_target(target, config, device)
