"""Training configurations: the official-schema network configs, ``TrainConfig`` and the shipped recipes."""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


from ..checkpoints import entry as _entry

DATA_KINDS = ("digits", "text")


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
