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

Rooms: ``config`` (network configs, ``TrainConfig``, recipes) -> ``build`` (network init, process, data) ->
``loop`` (``train``) with ``evaluation`` and ``export``; ``cli`` (``add_train_arguments``, ``run_train``).
"""
from ..checkpoints import CONFIG_METADATA_KEY
from .build import evaluation_set, official_init, process_hparams, train_sampler
from .cli import add_train_arguments, run_train
from .config import DATA_KINDS, RECIPES, TrainConfig, digits_model_config, get_recipe, text_model_config
from .evaluation import NLLEstimate, evaluate_loss_inf, evaluate_nll, sample_quality
from .export import export_checkpoint
from .loop import train

__all__ = [
    "CONFIG_METADATA_KEY",
    "DATA_KINDS",
    "RECIPES",
    "TrainConfig",
    "add_train_arguments",
    "digits_model_config",
    "evaluate_loss_inf",
    "evaluate_nll",
    "NLLEstimate",
    "evaluation_set",
    "export_checkpoint",
    "get_recipe",
    "official_init",
    "process_hparams",
    "run_train",
    "sample_quality",
    "text_model_config",
    "train",
    "train_sampler",
]
