"""The one training loop, shared by codec and language-model training.

A task (codec or LM) owns its models, data and losses; this loop owns everything else:
device and process group, AdamW per parameter group, warm-up + cosine schedule, gradient
accumulation and clipping, bf16 autocast on CUDA, gradient averaging across `torchrun`
ranks, progress bar, CSV (and TensorBoard) logs, evaluation, atomic checkpoints and exact
`--resume` (same step, weights, optimizer state and RNG, so an interrupted run continues as
if it had never stopped).

Run folder layout:
    config.json + model.safetensors   the exported model (loadable with no training code)
    train_state.safetensors           everything `--resume` needs, in one atomic file
    train_state.prev.safetensors      the checkpoint before, kept to fall back to (checkpoints.py)
    checkpoint.json                   sha256 of each of those files, verified by `--resume`
    recipe.json                       the resolved recipe
    train_log.csv, eval_log.csv       scalars per log step / per evaluation
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import torch

from .. import checkpoint
from ..errors import AudiogenError
from ..fileio import append_line, atomic_path, ensure_writable_dir, remove_stale_temporaries, write_json
from ..progress import bar
from . import distributed
from .checkpoints import MANIFEST_NAME, Checkpoints, read_state_meta

MAX_THREADS = 1024  # torch.set_num_threads with far more stalls the process
MAX_CROP_SECONDS = 3600.0  # the tasks' data crops (a batch of them is held in memory)


@dataclasses.dataclass
class TrainConfig:
    steps: int = 10_000
    batch_size: int = 8  # per process and micro-step
    grad_accum: int = 1
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # 0 disables
    log_every: int = 10
    eval_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # CPU threads per process; 0 keeps torch's default
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    stop_after: int = 0  # stop (with a checkpoint) at this step without changing the schedule; 0 = at `steps`
    # Wall-clock budget of this invocation in minutes (0 = none): when it is spent the loop evaluates,
    # checkpoints and stops; `--resume` carries on with the same step-based schedule. GPU time comes in
    # short windows, so a run there must end on time with its work saved.
    max_minutes: float = 0.0
    # With max_minutes: time steps CALIBRATION_STEPS..+CALIBRATION_STEPS, then set `steps` so that the
    # schedule (warm-up + cosine) ends when the budget does. The fitted value is saved in the checkpoint
    # and `--resume` keeps it. Keep warmup_steps >= 2 * CALIBRATION_STEPS so no learning rate used
    # before the fit depends on it.
    fit_steps_to_budget: bool = False
    # A validation scalar (e.g. `val_ce`, `val_mel`), lower is better: whenever an evaluation beats
    # the best so far, its model is exported to OUT/best as well (`best.json` says the step). Many
    # passes over a small corpus overfit late in a run; this keeps the model from before that.
    keep_best: str = ""

    def validate(self) -> None:
        # Written `not <what is allowed>` so that NaN fails every check.
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise AudiogenError("train: steps, batch_size and grad_accum must be at least 1")
        if not 0 < self.lr < math.inf:
            raise AudiogenError(f"train: lr must be a positive finite number, got {self.lr!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise AudiogenError(f"train: betas must be two numbers in [0, 1), got {list(self.betas)!r}")
        if not 0 <= self.weight_decay < math.inf:
            raise AudiogenError(f"train: weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if self.warmup_steps < 0 or self.stop_after < 0:
            raise AudiogenError("train: warmup_steps and stop_after must be >= 0")
        if self.schedule not in ("cosine", "constant"):
            raise AudiogenError("train: schedule must be cosine or constant")
        if not 0 <= self.min_lr_ratio <= 1:
            raise AudiogenError(f"train: min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if not 0 <= self.grad_clip < math.inf:
            raise AudiogenError(f"train: grad_clip must be a finite number >= 0 (0 = off), got {self.grad_clip!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise AudiogenError("train: precision must be auto, fp32 or bf16")
        if min(self.log_every, self.eval_every, self.checkpoint_every) < 1:
            raise AudiogenError("train: log_every, eval_every and checkpoint_every must be at least 1")
        if not 0 <= self.seed < 2**32:
            raise AudiogenError(f"train: seed must be in 0..{2**32 - 1}, got {self.seed}")
        if not 0 <= self.threads <= MAX_THREADS:
            raise AudiogenError(f"train: threads must be in 0..{MAX_THREADS} (0 = torch's default), got {self.threads}")
        if not 0 <= self.max_minutes < math.inf:
            raise AudiogenError("train: max_minutes must be a finite number >= 0 (0 = no budget)")
        if self.fit_steps_to_budget and not self.max_minutes > 0:
            raise AudiogenError("train: fit_steps_to_budget needs a max_minutes budget")
        if self.keep_best and not self.keep_best.replace("_", "").isalnum():
            raise AudiogenError(f"train: keep_best must name a validation scalar such as val_ce, got {self.keep_best!r}")

    @property
    def last_step(self) -> int:
        """Where this invocation stops: `steps`, or `stop_after` when that comes first."""
        return min(self.steps, self.stop_after) if self.stop_after > 0 else self.steps


CALIBRATION_STEPS = 20  # steps skipped (warm-up of kernels and caches), then timed, by fit_steps_to_budget


class Task(Protocol):
    """What a training task gives the loop."""

    modules: dict[str, torch.nn.Module]  # everything trained or with state; saved for resume

    def param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """One AdamW optimizer per entry (e.g. `generator`, `discriminator`)."""

    def train_step(self, step: int, micro: int, scale: float) -> dict[str, float]:
        """Forward + backward for one micro-batch (losses multiplied by `scale`); return scalars."""

    def evaluate(self) -> dict[str, float]:
        """Validation scalars (runs on rank 0 with modules in eval mode)."""

    def export(self, directory: Path) -> None:
        """Write the inference model (`config.json` + `model.safetensors`)."""


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio * lr` (or constant)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def autocast(cfg: TrainConfig, device: torch.device):
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class CsvLog:
    """Append-only CSV whose columns grow as new scalars appear; resume drops rows past the step."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as handle:
                self.rows = [r for r in csv.DictReader(handle) if int(float(r["step"])) <= resume_step]
        self._rewrite()

    def _rewrite(self) -> None:
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:  # full disk: one line
            writer = csv.DictWriter(handle, fieldnames=keys or ["step"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)

    def add(self, row: dict[str, Any]) -> None:
        known = set().union(*self.rows) if self.rows else set()
        self.rows.append(row)
        if set(row) - known or not self.path.exists():
            self._rewrite()
        else:
            text = io.StringIO()
            csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for r in self.rows for k in r)),
                           lineterminator="\n").writerow(row)
            append_line(self.path, text.getvalue())


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tb"))


def run(
    task: Task,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    device: torch.device,
    resume: bool = False,
    quiet: bool = False,
    recipe: dict[str, Any] | None = None,
    desc: str = "train",
) -> dict[str, float]:
    """Train `task` for `cfg.steps` optimizer steps; return the last evaluation's scalars."""
    cfg.validate()  # also for configs built in code: nothing is written for an impossible one
    out = Path(out_dir)
    main = distributed.is_main()
    saved = Checkpoints(out)
    # Checked on every rank (they read the same folder) and before anything is made: a wrong folder stays as it was.
    if resume and not saved.any_state():
        raise AudiogenError(f"nothing to resume in {out} (no {checkpoint.TRAIN_STATE_NAME})")
    if saved.any_state() and not resume:
        raise AudiogenError(f"{out} already holds a training run: pass --resume, or choose a new folder")
    if main:
        ensure_writable_dir(out)
        remove_stale_temporaries(out)  # half-written checkpoints of a killed run
    distributed.barrier()

    for module in task.modules.values():
        module.to(device)
        distributed.broadcast_module(module)
    groups = task.param_groups()
    optimizers = {
        name: torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        for name, params in groups.items()
    }
    rank, world = distributed.rank(), distributed.world_size()

    step, fitted_steps = 0, 0
    if resume:
        choice = saved.choose()  # every rank the same: the newest state whose checksum holds
        read_state_meta(choice.path)  # a damaged or foreign header is one line, not a traceback
        if main and (choice.fallback or not choice.verified):
            print(f"audiogen: warning: {choice.note}", file=sys.stderr)
        elif main and not quiet:
            print(choice.note, file=sys.stderr)
        step, meta, extra = checkpoint.load_train_state(choice.path, modules=task.modules, optimizers=optimizers)
        fitted_steps = int(meta.get("fitted_steps", 0))
        if fitted_steps and cfg.fit_steps_to_budget:  # the schedule fitted to the first budget stays
            cfg = dataclasses.replace(cfg, steps=fitted_steps)
        if main and choice.verified and not saved.model_matches(step):
            # The exported model is damaged, or newer than the state resumed: export the state's model.
            task.export(out)
            saved.record_model(step)
            if not choice.fallback:
                print(f"audiogen: warning: the model in {out} did not match its checksums in "
                      f"{MANIFEST_NAME}: exported again from step {step}", file=sys.stderr)
        rng = extra.get(f"rng_cpu_{rank}")
        if rng is not None:
            torch.set_rng_state(rng)
        if device.type == "cuda" and f"rng_cuda_{rank}" in extra:
            torch.cuda.set_rng_state(extra[f"rng_cuda_{rank}"], device)
        for module in task.modules.values():
            module.to(device)
        for optimizer in optimizers.values():  # optimizer state loads on CPU; move it with the model
            for slots in optimizer.state.values():
                for key, value in slots.items():
                    if isinstance(value, torch.Tensor) and key != "step":
                        slots[key] = value.to(device)
    end = cfg.last_step
    if step >= end:
        if main:
            print(f"{out}: already trained to step {step} (steps = {cfg.steps}); nothing to do")
        return {}

    train_log = eval_log = writer = None
    if main:
        write_json(out / "recipe.json", {**(recipe or {}), "world_size": world})
        train_log = CsvLog(out / "train_log.csv", step if resume else None)
        eval_log = CsvLog(out / "eval_log.csv", step if resume else None)
        writer = _tensorboard(out)

    def save(at_step: int) -> None:
        # Every rank contributes its RNG state; rank 0 writes one consistent file.
        cpu_states = distributed.gather_tensor(torch.get_rng_state().to(device))
        rng = {f"rng_cpu_{r}": t.cpu() for r, t in enumerate(cpu_states)}
        if device.type == "cuda":
            cuda_state = torch.cuda.get_rng_state(device).to(device)
            rng.update({f"rng_cuda_{r}": t.cpu() for r, t in enumerate(distributed.gather_tensor(cuda_state))})
        if main:
            task.export(out)

            def write_state(path: Path) -> None:
                checkpoint.save_train_state(path, step=at_step, modules=task.modules, optimizers=optimizers,
                                            tensors=rng, extra={"world_size": world, "fitted_steps": fitted_steps})

            saved.save(step=at_step, write_state=write_state)
        distributed.barrier()

    def keep_if_best(at_step: int, result: dict[str, float]) -> None:
        if cfg.keep_best not in result:
            raise AudiogenError(f"train: keep_best names {cfg.keep_best!r}, which this task's validation does not "
                                f"report (it reports {', '.join(sorted(result))})")
        value, best_file = result[cfg.keep_best], out / "best" / "best.json"
        try:  # the best of earlier invocations counts too (after --resume)
            best = json.loads(best_file.read_text())[cfg.keep_best]
        except (OSError, ValueError, KeyError):
            best = math.inf
        if value < best:  # NaN never is
            task.export(out / "best")
            write_json(best_file, {"step": at_step, cfg.keep_best: value})

    def evaluate(at_step: int) -> dict[str, float]:
        result: dict[str, float] = {}
        if main:
            for module in task.modules.values():
                module.eval()
            with torch.no_grad(), autocast(cfg, device):
                result = task.evaluate()
            for module in task.modules.values():
                module.train()
            eval_log.add({"step": at_step, **{k: f"{v:.6g}" for k, v in result.items()}})
            if writer:
                for k, v in result.items():
                    writer.add_scalar(f"eval/{k}", v, at_step)
        distributed.barrier()
        return result

    for module in task.modules.values():
        module.train()
    progress = bar(end, desc, quiet=quiet or not main, unit="step", initial=step)
    last_eval: dict[str, float] = {}
    running: dict[str, float] = {}
    started, started_step = time.time(), step
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes > 0 else float("inf")
    out_of_time = False
    calibrate = cfg.fit_steps_to_budget and not fitted_steps
    timer_step, timer_start = started_step + CALIBRATION_STEPS, 0.0
    try:
        while step < end:
            lr = lr_at(cfg, step)
            for optimizer in optimizers.values():
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                optimizer.zero_grad(set_to_none=True)
            scalars: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                with autocast(cfg, device):
                    out_scalars = task.train_step(step, micro, 1.0 / cfg.grad_accum)
                for k, v in out_scalars.items():
                    scalars[k] = scalars.get(k, 0.0) + v / cfg.grad_accum
            for name, optimizer in optimizers.items():
                params = [p for g in optimizer.param_groups for p in g["params"]]
                distributed.average_gradients(params)
                if cfg.grad_clip > 0:
                    norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    scalars[f"grad_norm_{name}"] = float(norm)
                optimizer.step()
            for module in task.modules.values():
                distributed.average_buffers(module)
            step += 1
            for k, v in scalars.items():
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            if step % cfg.log_every == 0 or step == end:
                logged = distributed.average_scalars(scalars, device)
                if main:
                    elapsed = time.time() - started
                    row = {"step": step, "lr": f"{lr:.4g}", "seconds": f"{elapsed:.1f}",
                           "steps_per_s": f"{(step - started_step) / max(elapsed, 1e-9):.3f}",
                           **{k: f"{v:.6g}" for k, v in logged.items()}}
                    train_log.add(row)
                    if writer:
                        for k, v in logged.items():
                            writer.add_scalar(f"train/{k}", v, step)
            shown = {k: f"{v:.3g}" for k, v in running.items() if not k.startswith("grad_norm")}
            progress.set_postfix(shown, refresh=False)
            progress.update(1)
            if calibrate and step == timer_step:
                timer_start = time.time()
            elif calibrate and step == timer_step + CALIBRATION_STEPS:
                calibrate = False
                per_step = (time.time() - timer_start) / CALIBRATION_STEPS
                # 3 % spare for evaluations and checkpoints; rank 0's estimate holds for every rank.
                fitted = step + int(max(0.0, budget_s - (time.time() - started)) * 0.97 / per_step)
                fitted_steps = distributed.broadcast_int(max(fitted, step + 1), device)
                cfg = dataclasses.replace(cfg, steps=fitted_steps)
                end = cfg.last_step
                progress.total = end
                if main and not quiet:
                    progress.write(f"{per_step * 1000:.0f} ms/step: schedule fitted to {fitted_steps} steps "
                                   f"for the {cfg.max_minutes:g}-minute budget")
            if budget_s < float("inf"):  # every rank must stop at the same step
                out_of_time = distributed.any_rank(time.time() - started >= budget_s, device)
            if step % cfg.eval_every == 0 or step == end or out_of_time:
                last_eval = evaluate(step)
                if main and not quiet:
                    progress.write(f"step {step}: " + "  ".join(f"{k} {v:.4g}" for k, v in last_eval.items()))
                if main and cfg.keep_best:
                    keep_if_best(step, last_eval)
            if step % cfg.checkpoint_every == 0 or step == end or out_of_time:
                save(step)
            if out_of_time:
                if main:
                    progress.write(f"time budget of {cfg.max_minutes:g} min spent at step {step} of {end}: "
                                   f"checkpointed; --resume carries on")
                break
    finally:
        progress.close()
        if writer:
            writer.close()
    # Every rank's weights, hashed: under torchrun they must be identical (a cheap, real check).
    checksums = [float(t) for t in distributed.gather_tensor(_checksum(task.modules).to(device))]
    if len(set(checksums)) > 1:
        raise RuntimeError(f"ranks diverged: weight checksums {checksums}")
    if main:
        write_json(out / "final_metrics.json", {"step": step, "schedule_steps": cfg.steps, "rank_checksums": checksums,
                                                "stopped_by_time_budget": out_of_time, **last_eval})
    return last_eval


def _checksum(modules: dict[str, torch.nn.Module]) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for module in modules.values():
        for i, p in enumerate(module.state_dict().values()):
            if p.is_floating_point():
                weights = torch.linspace(1, 2, p.numel(), dtype=torch.float64)  # position-sensitive
                total += (p.detach().double().cpu().flatten() * weights).sum() * (i + 1)
    return total.reshape(1)

