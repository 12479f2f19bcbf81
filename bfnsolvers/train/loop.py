"""The training loop: resumable state, learning-rate schedule, EMA, JSONL log, progress."""
from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from .._io import atomic_write, progress_bar
from .build import _build, evaluation_set, official_init, train_sampler
from .config import TrainConfig
from .evaluation import evaluate_loss_inf
from .export import export_checkpoint


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
    atomic_write(path, lambda p: Path(p).write_text("".join(ln + "\n" for ln in keep)))


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

        self.console = Console(stderr=True)
        if self.console.is_terminal:
            self.progress = progress_bar(
                f"[bold]{name}", "loss {task.fields[loss]:.4f} ema {task.fields[ema]:.4f} test {task.fields[test]}",
                "{task.fields[its]:.2f} it/s", console=self.console)
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
        atomic_write(state_path, lambda p: torch.save(state, p))
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
