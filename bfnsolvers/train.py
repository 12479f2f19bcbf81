"""Train BFNs with the continuous-time loss and export official-layout checkpoints.

Objective (BFN Sec. 3.10): minimise L_inf(x) = E_{t ~ U(0,1)}[alpha(t)/(2c) ||x0 - x0_hat(z_t, t)||^2]
(``process.loss_inf``), here per data dimension and averaged over the batch, so the
logged loss is in nats per dimension. Optimiser: AdamW with linear warm-up and a
cosine decay to ``min_lr_ratio * lr``; gradients clipped to a global norm; an
exponential moving average (EMA) of the weights, theta_ema <- d theta_ema + (1 - d) theta
with d = min(ema_decay, (1 + step)/(10 + step)).

Everything random (batches, times t, flow noise, dropout) comes from RNGs whose
states are stored in the training-state file, so an interrupted run resumed from
that file gives bit-identical weights to an uninterrupted one (same machine and
thread count). The state file is written atomically (tmp file + ``os.replace``).

The export is the EMA model as ``<out>/<name>.safetensors`` with official keys
(``net.`` prefix, as :func:`bfnsolvers.networks.build_model`) and, in the metadata
key ``bfnsolvers_config``, JSON with the official-schema ``model:`` dict (network,
adapters, ``bayesian_flow``, ``distribution_factory``) and the process
hyper-parameters; :func:`bfnsolvers.checkpoints.load_checkpoint` reads it.

CLI hooks: :func:`add_train_arguments` (argparse) and :func:`run_train`; :func:`main`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "CONFIG_METADATA_KEY",
    "RECIPES",
    "TrainConfig",
    "add_train_arguments",
    "evaluate_loss_inf",
    "export_checkpoint",
    "get_recipe",
    "main",
    "official_init",
    "process_hparams",
    "run_train",
    "sample_quality",
    "evaluation_set",
    "train",
]

from .checkpoints import CONFIG_METADATA_KEY  # metadata key of the exported JSON config  # noqa: E402
DATA_KINDS = ("digits", "text")


# --------------------------------------------------------------------------- configs


def _entry(class_name: str, **parameters: Any) -> dict:
    return {"class_name": class_name, "parameters": parameters}


def digits_model_config(embedding_dim: int = 32, n_blocks: int = 2, output_height: int = 1,
                        dropout_prob: float = 0.1, norm_groups: int = 32) -> dict:
    """Official-schema ``model:`` dict of a small UNetVDM on 8x8x1 images.

    Input adapter: 1 channel, no mask / position features, output_height 1, so it
    passes pixel values through unprojected (as CIFAR-10's 3 -> 3). Output adapter:
    input_height = 1 + embedding_dim (pixel + features), output_height 1 (eps) or 2
    (eps mean, log-std) for discretised data.
    """
    return {
        "net": _entry(
            "UNetVDM", embedding_dim=embedding_dim, n_blocks=n_blocks, n_attention_heads=1,
            dropout_prob=dropout_prob, norm_groups=norm_groups, input_channels=1,
            use_fourier_features=True, attention_everywhere=False, image_size=8,
        ),
        "input_adapter": _entry(
            "FourierImageInputAdapter", input_channels=1, input_shape=[8, 8], output_height=1,
            add_pos_feats=False, add_mask=False,
        ),
        "output_adapter": _entry("OutputAdapter", input_height=1 + embedding_dim, output_channels=1,
                                 output_height=output_height),
    }


def text_model_config(n_layer: int = 4, n_head: int = 4, n_embd: int = 128, seq_len: int = 64,
                      vocab_size: int = 27) -> dict:
    """Official-schema ``model:`` dict of a small non-causal GPT with skip (text8 layout)."""
    return {
        "net": _entry("GPT", vocab_size=vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                      dropout=0.0, skip=True, bias=True),
        "input_adapter": _entry("TextInputAdapter", vocab_size=vocab_size, seq_len=seq_len,
                                output_size=n_embd, learn_pos_embedding=False),
        "output_adapter": None,
    }


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the state file and the export).

    ``model`` is the official-schema ``model:`` dict including ``bayesian_flow`` and
    ``distribution_factory`` (they define the process, see
    :func:`bfnsolvers.checkpoints.make_process`). ``data``: "digits" (sklearn 8x8,
    17-bin centres, channels-last) or "text" (KJV, 27 classes, windows of ``seq_len``).
    """

    name: str
    model: dict
    data: str
    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    seq_len: int = 64
    eval_every: int = 500
    eval_items: int = 256
    eval_seed: int = 0
    eval_repeats: int = 1
    save_every: int = 500
    log_every: int = 10
    notes: str = ""

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "eval_every", "eval_items", "eval_repeats", "save_every", "log_every",
                    "seq_len")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key}: expected a positive integer, got {value!r}")
        if self.data not in DATA_KINDS:
            raise ValueError(f"data: expected one of {DATA_KINDS}, got {self.data!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio: expected a number in [0, 1], got {self.min_lr_ratio!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay: expected a number in [0, 1), got {self.ema_decay!r}")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip: expected a positive number, got {self.grad_clip!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: expected a non-negative integer, got {self.warmup_steps!r}")
        if not isinstance(self.model, dict) or "bayesian_flow" not in self.model:
            raise ValueError("model: expected an official-schema model dict with a 'bayesian_flow' entry")
        self.betas = (float(self.betas[0]), float(self.betas[1]))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown TrainConfig fields {unknown}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**copy.deepcopy(self.to_dict()), **changes})


def _digits_continuous() -> TrainConfig:
    model = digits_model_config(embedding_dim=32, n_blocks=2, output_height=1)
    model["bayesian_flow"] = _entry("CtsBayesianFlow", min_variance=1e-6)  # sigma_1 = 0.001 (CIFAR-10)
    model["distribution_factory"] = _entry("DeltaFactory")
    return TrainConfig(name="digits-continuous", model=model, data="digits", steps=4000, batch_size=64,
                       lr=2e-3, warmup_steps=200, ema_decay=0.999, eval_every=500, save_every=500,
                       eval_repeats=4)


def _digits_discretised() -> TrainConfig:
    model = digits_model_config(embedding_dim=32, n_blocks=2, output_height=2)
    model["bayesian_flow"] = _entry("CtsBayesianFlow", min_variance=1e-3)  # sigma_1 = sqrt(1e-3) (16 bins)
    model["distribution_factory"] = _entry("DiscretizedNormalFactory", num_bins=17, clip=True)
    return TrainConfig(name="digits-discretised", model=model, data="digits", steps=4000, batch_size=64,
                       lr=2e-3, warmup_steps=200, ema_decay=0.999, eval_every=500, save_every=500,
                       eval_repeats=4)


def _text_discrete() -> TrainConfig:
    model = text_model_config(n_layer=4, n_head=4, n_embd=128, seq_len=64)
    model["bayesian_flow"] = _entry("DiscreteBayesianFlow", n_classes=27, max_sqrt_beta=0.75)  # text8
    model["distribution_factory"] = _entry("CategoricalFactory")
    return TrainConfig(name="text-discrete", model=model, data="text", steps=8000, batch_size=32, lr=2e-3,
                       warmup_steps=300, ema_decay=0.999, seq_len=64, eval_every=1000, save_every=500,
                       eval_repeats=1)


_RECIPE_FACTORIES: dict[str, Callable[[], TrainConfig]] = {
    "digits-continuous": _digits_continuous,
    "digits-discretised": _digits_discretised,
    "text-discrete": _text_discrete,
}
#: Names of the shipped recipes (``get_recipe(name)`` returns a fresh copy).
RECIPES: tuple[str, ...] = tuple(_RECIPE_FACTORIES)


def get_recipe(name: str, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of a shipped checkpoint's recipe, with optional field overrides."""
    if name not in _RECIPE_FACTORIES:
        raise ValueError(f"recipe: unknown {name!r}; expected one of {list(RECIPES)}")
    cfg = _RECIPE_FACTORIES[name]()
    return cfg.replace(**overrides) if overrides else cfg


# --------------------------------------------------------------------------- model and process


def official_init(model: nn.Module) -> nn.Module:
    """Initialise a fresh network as the official BFN code does.

    UNetVDM: zero the last conv of every residual block, of every attention block
    and of ``conv_out`` (each block starts as the identity). GPT (nanoGPT): all
    Linear / Embedding weights N(0, 0.02^2), biases 0, residual projections
    ``c_proj`` N(0, (0.02 / sqrt(2 n_layer))^2).
    """
    from .networks.gpt import GPT
    from .networks.unet_vdm import AttentionBlock, ResnetBlock, UNetVDM

    net = getattr(model, "net", model)
    if isinstance(net, UNetVDM):
        for m in net.modules():
            if isinstance(m, ResnetBlock):
                last = m.net2[-1]
            elif isinstance(m, AttentionBlock):
                last = m.layers[-1]
            else:
                continue
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        nn.init.zeros_(net.conv_out[-1].weight)
        nn.init.zeros_(net.conv_out[-1].bias)
    elif isinstance(net, GPT):
        for m in net.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)
        n_layer = len(net.transformer.h)
        for name, p in net.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
    return model


def process_hparams(process: Any) -> dict:
    """JSON-able description of a process: class name and hyper-parameters."""
    out: dict[str, Any] = {"class": type(process).__name__}
    for key in ("sigma_1", "num_bins", "beta_1", "num_classes"):
        if hasattr(process, key):
            out[key] = getattr(process, key)
    return out


def _build(config: TrainConfig):
    from .checkpoints import make_process
    from .networks import build_model, normalize_model_config

    model_cfg = normalize_model_config(config.model)
    return build_model(model_cfg), make_process(model_cfg), model_cfg


# --------------------------------------------------------------------------- data


def train_sampler(config: TrainConfig) -> Callable[[int, torch.Generator], Tensor]:
    """``sample(batch_size, generator)`` drawing a training batch (with replacement)."""
    from .data import load_digits_images, load_text_tokens, random_text_windows

    if config.data == "digits":
        images = load_digits_images("train")

        def digits(batch: int, gen: torch.Generator) -> Tensor:
            return images[torch.randint(0, len(images), (batch,), generator=gen)]

        return digits
    tokens = load_text_tokens("train")
    return lambda batch, gen: random_text_windows(tokens, config.seq_len, batch, gen)


def evaluation_set(data: str, n: int = 256, seq_len: int = 64) -> Tensor:
    """The fixed evaluation set: the first ``n`` digits test images, or ``n`` text test
    windows of ``seq_len`` whose starts are evenly spaced over the test split."""
    from .data import DIGITS_NUM_TEST, load_digits_images, load_text_tokens

    if data == "digits":
        if not 1 <= n <= DIGITS_NUM_TEST:
            raise ValueError(f"n: expected 1..{DIGITS_NUM_TEST} digits test items, got {n}")
        return load_digits_images("test")[:n]
    if data == "text":
        tokens = load_text_tokens("test")
        if n < 1 or seq_len < 1 or seq_len > len(tokens):
            raise ValueError(f"n, seq_len: expected positive values with seq_len <= {len(tokens)}, got {n}, {seq_len}")
        starts = torch.linspace(0, len(tokens) - seq_len, n, dtype=torch.float64).long()
        return tokens[starts[:, None] + torch.arange(seq_len)]
    raise ValueError(f"data: expected one of {DATA_KINDS}, got {data!r}")


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_loss_inf(model: Callable, process: Any, x: Tensor, seed: int = 0, repeats: int = 1,
                      batch_size: int = 256) -> tuple[float, float]:
    """Monte-Carlo test-set L_inf in nats per data dimension, and its standard error.

    Each item's loss is averaged over ``repeats`` independent draws of (t, z_t);
    the estimate is the mean over items of loss / D (D = dimensions per item) and
    the standard error is std(per-item means) / sqrt(N). All draws come from
    ``torch.Generator().manual_seed(seed)`` (batches of ``batch_size``, repeats outer).
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats!r}")
    if x.shape[0] < 2:
        raise ValueError(f"x: expected at least 2 items, got shape {tuple(x.shape)}")
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    device = next(model.parameters()).device if isinstance(model, nn.Module) else torch.device("cpu")
    gen = torch.Generator(device=device).manual_seed(seed)
    dims = x[0].numel()
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for _ in range(repeats):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device)
            total[i:i + batch_size] += process.loss_inf(model, xb, gen).double().cpu()
    if isinstance(model, nn.Module):
        model.train(was_training)
    per_item = total / repeats / dims
    return per_item.mean().item(), (per_item.std(unbiased=True) / math.sqrt(len(per_item))).item()


@torch.no_grad()
def sample_quality(model: Callable, process: Any, data: str, n: int, *, nfe: int = 1000, solver: str = "bfn",
                   seed: int = 0, batch_size: int = 256, seq_len: int = 64,
                   confidence: float = 0.9) -> tuple[Tensor, dict]:
    """Draw ``n`` samples with ``bfnsolvers.sampling.sample`` and score them; return (samples, metrics).

    Digits: the shipped digits classifier's softmax on each sample; ``confident_fraction``
    = fraction with max probability >= ``confidence``; ``class_counts``; ``fd_test`` =
    :func:`bfnsolvers.metrics.digits_fd` against the 297 test images. Text:
    ``dictionary_word_fraction`` = :func:`bfnsolvers.metrics.spelling_accuracy` (edge
    words dropped) over all samples, with the number of words scored. Batches of
    ``batch_size`` share one ``torch.Generator().manual_seed(seed)``.
    """
    from .sampling import sample

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    if data not in DATA_KINDS:
        raise ValueError(f"data: expected one of {DATA_KINDS}, got {data!r}")
    gen = torch.Generator().manual_seed(seed)
    shape = (8, 8, 1) if data == "digits" else (seq_len,)
    parts = []
    for i in range(0, n, batch_size):
        b = min(batch_size, n - i)
        x, _ = sample(model, process, solver=solver, nfe=nfe, shape=(b, *shape), generator=gen)
        parts.append(x)
    samples = torch.cat(parts)
    metrics: dict[str, Any] = {"n": n, "nfe": nfe, "solver": solver, "seed": seed}
    if data == "digits":
        from .data import load_digits_images
        from .metrics import digits_fd, load_digits_classifier

        classifier = load_digits_classifier()
        probs = torch.softmax(classifier(samples.float().clamp(-1, 1)), -1)
        top, label = probs.max(-1)
        metrics.update(confidence=confidence, confident_fraction=(top >= confidence).double().mean().item(),
                       mean_max_prob=top.double().mean().item(),
                       class_counts=torch.bincount(label, minlength=10).tolist(),
                       fd_test=digits_fd(samples, load_digits_images("test")))
    else:
        from .data import tokens_to_text
        from .metrics import spelling_accuracy
        from .metrics.text import split_words

        texts = tokens_to_text(samples)
        metrics.update(dictionary_word_fraction=spelling_accuracy(texts),
                       words=sum(len(split_words(t)) for t in texts), characters=samples.numel())
    return samples, metrics


# --------------------------------------------------------------------------- export


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(str(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # some writers create 0600 files
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def export_checkpoint(model: nn.Module, config: TrainConfig, path: str | Path, *, step: int,
                      extra: dict | None = None) -> Path:
    """Write ``model``'s weights (official ``net.`` keys, float32) as safetensors, atomically.

    Metadata ``bfnsolvers_config``: JSON ``{"model": official model dict, "process":
    process hyper-parameters, "train": TrainConfig, "step": step, ...extra}``.
    """
    from safetensors.torch import save_file

    from .checkpoints import make_process
    from .networks import normalize_model_config

    model_cfg = normalize_model_config(config.model)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    bad = [k for k in state if not k.startswith("net.")]
    if bad:
        raise ValueError(f"model: expected a wrapped network with 'net.'-prefixed keys, got {bad[:3]}")
    meta = {"format": "bfnsolvers-checkpoint-1", "model": model_cfg,
            "process": process_hparams(make_process(model_cfg)), "train": config.to_dict(), "step": step}
    meta.update(extra or {})
    path = Path(path)
    _atomic_write(path, lambda p: save_file(state, p, metadata={CONFIG_METADATA_KEY: json.dumps(meta),
                                                                  "format": "pt"}))
    return path


# --------------------------------------------------------------------------- training


def _lr_at(config: TrainConfig, step: int) -> float:
    """Learning rate of the update that produces step ``step + 1`` (warm-up, then cosine)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    ratio = config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * ratio


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _paths(config: TrainConfig, out_dir: str | Path | None, state_dir: str | Path) -> dict[str, Path | None]:
    state_dir = Path(state_dir)
    return {
        "state": state_dir / f"{config.name}.state.pt",
        "log": state_dir / f"{config.name}.jsonl",
        "export": None if out_dir is None else Path(out_dir) / f"{config.name}.safetensors",
    }


def _truncate_log(path: Path, step: int) -> None:
    """Keep only log records up to ``step`` (records written after the last saved state are redone)."""
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    _atomic_write(path, lambda p: Path(p).write_text("".join(ln + "\n" for ln in keep)))


def _same_run(saved: dict, config: TrainConfig) -> list[str]:
    """Fields that differ between a saved config and ``config`` (``steps`` may differ only
    if the schedule does not depend on it, so it is compared too)."""
    now = config.to_dict()
    ignore = {"eval_every", "save_every", "log_every", "notes"}
    return sorted(k for k in now if k not in ignore and saved.get(k) != now[k])


class _Reporter:
    """Rich progress bar on a terminal; plain periodic lines otherwise (e.g. nohup logs)."""

    def __init__(self, enabled: bool, total: int, start: int, name: str) -> None:
        self.enabled, self.progress, self.task = enabled, None, None
        self.last_print = time.perf_counter()
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self.console = Console(stderr=True)
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f} ema {task.fields[ema]:.4f} test {task.fields[test]}"),
                TextColumn("{task.fields[its]:.2f} it/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()
            self.task = self.progress.add_task(name, total=total, completed=start, loss=float("nan"),
                                               ema=float("nan"), test="-", its=0.0)

    def update(self, step: int, loss: float, ema: float, its: float, test: str, force: bool = False) -> None:
        if not self.enabled:
            return
        if self.progress is not None:
            self.progress.update(self.task, completed=step, loss=loss, ema=ema, its=its, test=test)
        elif force or time.perf_counter() - self.last_print > 30:
            self.last_print = time.perf_counter()
            print(f"step {step} loss {loss:.4f} ema_loss {ema:.4f} test_loss_inf {test} {its:.2f} it/s", flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def train(config: TrainConfig, out_dir: str | Path | None = "checkpoints", state_dir: str | Path = "out/train",
          *, resume: bool = True, stop_at: int | None = None, progress: bool = True,
          device: str | torch.device = "cpu", sampler: Callable[[int, torch.Generator], Tensor] | None = None,
          test_data: Tensor | None = None) -> dict:
    """Train ``config`` with L_inf; return a summary dict.

    Files: ``<state_dir>/<name>.state.pt`` (model, EMA, optimiser, step, RNG states,
    elapsed time; written atomically every ``save_every`` steps and at the end),
    ``<state_dir>/<name>.jsonl`` (records ``{"step", "loss", "ema_loss", "lr",
    "grad_norm", "elapsed"}`` every ``log_every`` steps and ``{"step",
    "test_loss_inf", "test_stderr"}`` (EMA weights, nats/dim) every ``eval_every``
    steps), and, unless ``out_dir`` is None, the EMA export ``<out_dir>/<name>.safetensors``
    (rewritten at every save). With ``resume`` an existing state file is continued
    (its config must match); ``stop_at`` ends the run early at that step (as an
    interruption would), leaving a resumable state. ``sampler(batch, generator)`` and
    ``test_data`` override the data named by ``config.data``.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if stop_at is not None and (not isinstance(stop_at, int) or stop_at < 0):
        raise ValueError(f"stop_at: expected a non-negative integer or None, got {stop_at!r}")
    device = torch.device(device)
    paths = _paths(config, out_dir, state_dir)
    torch.manual_seed(config.seed)  # initialisation and dropout use the global RNG
    model, process, _ = _build(config)
    official_init(model)
    model.to(device).train()
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=config.betas)
    gen = torch.Generator().manual_seed(config.seed)  # batches
    loss_gen = torch.Generator(device=device).manual_seed(config.seed + 1)  # t and flow noise
    step, elapsed, ema_loss = 0, 0.0, float("nan")

    state_path, log_path = paths["state"], paths["log"]
    if resume and state_path.is_file():
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
        diff = _same_run(saved["config"], config)
        if diff:
            raise ValueError(f"config: differs from the run saved in {str(state_path)!r} in {diff}; "
                             f"use another state_dir or resume=False")
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["optimizer"])
        gen.set_state(saved["rng"]["batches"])
        loss_gen.set_state(saved["rng"]["loss"].to(loss_gen.get_state().device))
        torch.set_rng_state(saved["rng"]["torch"])
        if device.type == "cuda" and saved["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(saved["rng"]["cuda"], device)
        step, elapsed, ema_loss = int(saved["step"]), float(saved["elapsed"]), float(saved["ema_loss"])
        _truncate_log(log_path, step)
    else:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        if log_path.exists():
            log_path.unlink()

    sampler = sampler or train_sampler(config)
    x_test = test_data if test_data is not None else evaluation_set(config.data, config.eval_items, config.seq_len)
    dims = int(math.prod(x_test.shape[1:]))
    end = config.steps if stop_at is None else min(stop_at, config.steps)

    def save() -> None:
        state = {
            "config": config.to_dict(), "step": step, "elapsed": elapsed, "ema_loss": ema_loss,
            "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": {"batches": gen.get_state(), "loss": loss_gen.get_state().cpu(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
        }
        _atomic_write(state_path, lambda p: torch.save(state, p))
        if paths["export"] is not None:
            export_checkpoint(ema, config, paths["export"], step=step,
                              extra={"elapsed_s": round(elapsed, 1)})

    def log(record: dict) -> None:
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    last_test = "-"
    reporter = _Reporter(progress, config.steps, step, config.name)
    t_window, steps_window, its = time.perf_counter(), 0, 0.0
    try:
        while step < end:
            t0 = time.perf_counter()
            lr = _lr_at(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = sampler(config.batch_size, gen).to(device)
            loss = (process.loss_inf(model, x, loss_gen) / dims).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {loss.item()} at step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip).item()
            optimizer.step()
            step += 1
            _ema_update(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
            value = loss.item()
            ema_loss = value if math.isnan(ema_loss) else 0.98 * ema_loss + 0.02 * value
            elapsed += time.perf_counter() - t0
            steps_window += 1
            now = time.perf_counter()
            if now - t_window > 2:
                its, t_window, steps_window = steps_window / (now - t_window), now, 0
            elif its == 0.0:
                its = steps_window / max(now - t_window, 1e-9)
            if step % config.log_every == 0 or step == end:
                log({"step": step, "loss": value, "ema_loss": ema_loss, "lr": lr, "grad_norm": grad_norm,
                     "elapsed": round(elapsed, 2)})
            evaluated = step % config.eval_every == 0 or step == config.steps
            if evaluated:
                mean, se = evaluate_loss_inf(ema, process, x_test, config.eval_seed, config.eval_repeats)
                last_test = f"{mean:.4f}"
                log({"step": step, "test_loss_inf": mean, "test_stderr": se, "elapsed": round(elapsed, 2)})
            reporter.update(step, value, ema_loss, its, last_test, force=evaluated)
            if step % config.save_every == 0 or step == end:
                save()
    finally:
        reporter.close()
    return {"name": config.name, "step": step, "finished": step >= config.steps, "elapsed_s": elapsed,
            "ema_loss": ema_loss, "state": str(state_path), "log": str(log_path),
            "export": None if paths["export"] is None else str(paths["export"]), "model": model, "ema": ema}


# --------------------------------------------------------------------------- CLI


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``bfnsolvers train`` (use with :func:`run_train`)."""
    parser.add_argument("--recipe", required=True, choices=RECIPES, help="shipped recipe to train")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--out", default="checkpoints", help="folder of the exported <name>.safetensors")
    parser.add_argument("--state-dir", default="out/train", help="folder of the training state and JSONL log")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--name", default=None, help="file name (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a state file exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar / periodic lines")
    return parser


def run_train(args: argparse.Namespace) -> dict:
    """Run ``bfnsolvers train`` from parsed :func:`add_train_arguments` arguments."""
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr),
                                   ("seed", args.seed), ("name", args.name)) if v is not None}
    config = get_recipe(args.recipe, **overrides)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"threads: expected a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    result = train(config, args.out, args.state_dir, resume=not args.no_resume, progress=not args.no_progress,
                   device=args.device)
    print(f"{config.name}: step {result['step']}/{config.steps}, {result['elapsed_s']:.0f} s of training, "
          f"export {result['export']}", flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bfnsolvers.train --recipe NAME [...]``: ``bfnsolvers train ...`` (same errors and exit status)."""
    from .cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
