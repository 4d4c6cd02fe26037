"""The fine-tuning loop: one Accelerate loop for CPU, one GPU and many processes.

Exact resume: the sample order of an epoch depends only on ``(seed, epoch)``, each sample's
augmentation only on ``(seed, epoch, index)``, and the random state of every optimizer step
(dropout) only on ``(seed, step, process)``. A checkpoint holds model, optimizer, scheduler,
gradient scaler, EMA and the loop's counters (including the running loss of the epoch), so
a run resumed from it continues with the very same batches and computations.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from .._version import __version__
from ..data import DataError
from ..data.splits import save_split
from ..data.torch_dataset import mix_seed
from ..hub import model_preprocessing, save_pretrained
from ..metrics import confusion_counts, scores
from ..models import mask_logits
from ..models.base import explain_norm_error
from .config import ConfigError, FinetuneConfig, parse_size, write_yaml
from .data import (
    EpochBatches,
    build_datasets,
    choose_split,
    close_loader,
    epoch_order,
    full_size,
    make_loader,
    open_training_dataset,
)
from .optim import ModelEMA, build_optimizer, build_scheduler, implementation, restore_implementation
from .report import Reporter
from .run_folder import STATE_NAME, RunFolder, as_os_error
from .setup import (
    build_loss,
    build_model,
    class_names,
    cpu_supports_bf16,
    resolve_mixed_precision,
    resolve_task,
    set_determinism,
    use_cpu,
)

REPORT_EVERY = 10  # optimizer steps between loss read-outs for plain (--quiet) logs


@dataclass
class TrainerState:
    """The loop's counters, saved with every checkpoint."""

    epoch: int = 0
    step: int = 0
    epoch_step: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    samples: int = 0
    seconds: float = 0.0
    best: float | None = None
    best_epoch: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    stopped_early: bool = False


@dataclass
class FinetuneResult:
    """Where a finished run put its models, and its best validation metrics."""

    run: Path
    best: Path
    last: Path
    best_metrics: dict[str, float]
    best_epoch: int | None
    steps: int
    main: bool = True


def versions() -> dict[str, str]:
    import accelerate
    import timm

    return {"unetzoo": __version__, "torch": str(torch.__version__), "timm": str(timm.__version__),
            "accelerate": str(accelerate.__version__)}  # fmt: skip


class Trainer:
    """Builds a run from a :class:`FinetuneConfig` and trains it; see :func:`finetune`."""

    def __init__(self, config: FinetuneConfig, *, resume: bool = False, overwrite: bool = False,
                 quiet: bool = False) -> None:  # fmt: skip
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        config.validate()
        self.config, self.resume = config, resume
        self.folder = RunFolder(config.out)
        if not resume:
            self.folder.check_new(overwrite)
        cpu = use_cpu(config)
        config.mixed_precision = resolve_mixed_precision(config.mixed_precision, cpu)
        if cpu and config.mixed_precision == "bf16" and not cpu_supports_bf16():
            warnings.warn("--mixed-precision bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) is "
                          "emulated and many times slower than full precision; 'auto' chooses for you",
                          stacklevel=2)  # fmt: skip
        if AcceleratorState._shared_state:  # an earlier run in this process: let this one set its own precision
            AcceleratorState._reset_state()
        try:
            self.accelerator = Accelerator(cpu=cpu, mixed_precision=config.mixed_precision,
                                           log_with=config.log_with, project_dir=str(self.folder.path))  # fmt: skip
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"--mixed-precision/--log-with: {exc}") from exc
        acc = self.accelerator
        if config.log_with and not acc.log_with:
            raise ConfigError(f"--log-with {config.log_with}: that tracker is not installed (pip install it, "
                              "e.g. tensorboard or wandb)")  # fmt: skip
        self.main = acc.is_main_process
        self.reporter = Reporter(self.main, quiet)
        set_determinism(config.deterministic)
        torch.manual_seed(config.seed)

        dataset, labels = open_training_dataset(config)
        if config.ignore_index is None:  # the dataset's value for pixels of no class (LabelMe __ignore__)
            config.ignore_index = dataset.ignore_index
        self.dataset = dataset
        self.split = choose_split(dataset, config)
        mode, classes, in_channels = resolve_task(config, dataset)
        self.mode, self.classes = mode, classes
        config.mode, config.classes, config.in_channels = mode, classes, in_channels
        model = build_model(config, dataset.spatial_dims, classes, in_channels)
        if labels is not None and not getattr(model, "classifier", None):
            raise ConfigError(f"{config.model}: a labels file was given but the model has no classification "
                              "head; add --model-arg aux_classes=N")  # fmt: skip
        self.labels = labels
        self.names = class_names(dataset, mode, classes)
        self.preprocessing = model_preprocessing(model)
        # What images go through before the network, saved with the model so that evaluate,
        # predict and a shipped weight tag repeat it: CLAHE, and the resize of --size (2D).
        self.preprocessing["clahe"] = bool(config.clahe)
        if config.size and dataset.spatial_dims == 2:
            self.preprocessing["input_size"] = list(full_size(parse_size(config.size, "size"), 2, "size"))
        self.plan = build_datasets(dataset, self.split, config, self.preprocessing, labels)
        if config.channels_last is None:
            config.channels_last = self.plan.spatial_dims == 2
        self.memory_format = torch.channels_last if config.channels_last and self.plan.spatial_dims == 2 \
            else torch.contiguous_format  # fmt: skip
        self.criterion = build_loss(config, mode)
        model = model.to(acc.device, memory_format=self.memory_format)
        self.ema = ModelEMA(model, config.ema) if config.ema else None
        optimizer = build_optimizer(model, config)

        self.steps_per_epoch = self._steps_per_epoch()
        if config.max_steps is not None:
            self.total_steps = config.max_steps
            self.epochs = math.ceil(config.max_steps / self.steps_per_epoch)
        else:
            self.epochs = config.epochs
            self.total_steps = config.epochs * self.steps_per_epoch
        self.scheduler = build_scheduler(optimizer, config, self.total_steps)
        if config.compile:
            model = torch.compile(model)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.batches = EpochBatches(config.batch_size)
        self.train_loader = make_loader(self.plan.train, self.batches, config.workers,
                                        pin_memory=acc.device.type == "cuda")  # fmt: skip
        val_loader = make_loader(self.plan.val, self.plan.val_batch_size, config.workers, pin_memory=not cpu)
        self.val_loader = acc.prepare(val_loader)
        acc.register_for_checkpointing(self.scheduler)
        if self.ema is not None:
            self.ema.to(acc.device)
            acc.register_for_checkpointing(self.ema)
        self.state = TrainerState()
        self.pending_loss = torch.zeros((), dtype=torch.float64, device=acc.device)
        self.rows: list[dict[str, Any]] = []
        self._prepare_folder()

    # ------------------------------------------------------------------ set-up

    def _steps_per_epoch(self) -> int:
        acc, c = self.accelerator, self.config
        micro = len(epoch_order(len(self.plan.train), c.seed, 0, acc.num_processes, acc.process_index,
                                c.batch_size, c.drop_last)) // c.batch_size  # fmt: skip
        return max(1, math.ceil(micro / c.accumulate))

    def _prepare_folder(self) -> None:
        acc, folder = self.accelerator, self.folder
        if self.resume:
            if self.main:
                folder.recover()
            acc.wait_for_everyone()
            checkpoint = folder.latest_checkpoint()
            kernels = implementation(self.optimizer)
            acc.load_state(str(checkpoint))
            restore_implementation(self.optimizer, kernels)
            self.state = TrainerState(**json.loads((checkpoint / STATE_NAME).read_text()))
            self.rows = [r for r in folder.read_metrics() if int(r["step"]) <= self.state.step]
            self.reporter.message(f"resuming {folder.path} from {checkpoint.name} (epoch {self.state.epoch + 1}, "
                                  f"step {self.state.step})")  # fmt: skip
            return
        if self.main:
            folder.create(overwrite=True)
            write_yaml(folder.config, self.config, versions())
            save_split(folder.split, self.split, dataset=str(self.config.data), seed=self.config.seed)
        acc.wait_for_everyone()

    # ------------------------------------------------------------------ training

    def fit(self) -> FinetuneResult:
        """Train until the epochs or steps are done or early stopping ends the run."""
        acc, c, s = self.accelerator, self.config, self.state
        if c.log_with:
            acc.init_trackers("unetzoo", config={k: str(v) for k, v in c.to_dict().items()})
        self.reporter.message(
            f"fine-tuning {c.model} on {c.data}: {len(self.plan.train)} training / {len(self.plan.val)} "
            f"validation samples, {self.steps_per_epoch} steps per epoch, {acc.num_processes} process(es) "
            f"on {acc.device}, mixed precision {c.mixed_precision}"
        )
        try:
            if self.total_steps == 0 and not self.rows:
                self._end_of_epoch(0.0)
            while s.epoch < self.epochs and s.step < self.total_steps and not s.stopped_early:
                self._train_epoch()
        finally:
            close_loader(self.train_loader)
            close_loader(self.val_loader)
        self.reporter.close()
        acc.wait_for_everyone()
        if c.log_with:
            acc.end_training()
        return FinetuneResult(self.folder.path, self.folder.path / "best", self.folder.path / "last",
                              s.best_metrics, s.best_epoch, s.step, self.main)  # fmt: skip

    def _frozen(self) -> bool:
        c = self.config
        return c.encoder_lr_mult == 0 or self.state.epoch < c.freeze_encoder_epochs

    def _train_epoch(self) -> None:
        acc, c, s = self.accelerator, self.config, self.state
        order = epoch_order(len(self.plan.train), c.seed, s.epoch, acc.num_processes, acc.process_index,
                            c.batch_size, c.drop_last)  # fmt: skip
        micro_total = len(order) // c.batch_size + (len(order) % c.batch_size > 0)
        start = s.epoch_step * c.accumulate
        self.batches.start(s.epoch, order[start * c.batch_size :])
        model = self.model
        model.train()
        frozen = self._frozen()
        encoder = getattr(acc.unwrap_model(model), "encoder", None)
        if frozen and encoder is not None:
            encoder.eval()
        self.reporter.start_epoch(s.epoch, self.epochs, self.steps_per_epoch, s.epoch_step)
        started = time.perf_counter()
        micro = start
        for batch in self.train_loader:
            group_start = micro - micro % c.accumulate
            group = min(c.accumulate, micro_total - group_start)
            last_in_group = micro + 1 == group_start + group
            if micro == group_start:
                torch.manual_seed(mix_seed(c.seed, s.step, acc.process_index, 1))
            self._check_masks(batch)
            sync = contextlib.nullcontext() if last_in_group else acc.no_sync(model)
            with sync:
                loss = self._loss(batch)
                acc.backward(loss / group)
            self.pending_loss += loss.detach()
            s.loss_count += 1
            s.samples += batch["image"].shape[0] * acc.num_processes
            micro += 1
            if not last_in_group:
                continue
            self._optimizer_step(frozen, encoder)
            s.seconds += time.perf_counter() - started
            started = time.perf_counter()
            if s.step % REPORT_EVERY == 0 or not self.reporter.quiet:
                self._flush_loss()  # waits for the device: only as often as the loss is shown
            self.reporter.step(s.loss_sum / max(s.loss_count, 1), s.samples / max(s.seconds, 1e-9))
            if c.checkpoint_every and s.step % c.checkpoint_every == 0 and s.epoch_step < self.steps_per_epoch:
                self._checkpoint()
            if s.step >= self.total_steps:
                break
        s.seconds += time.perf_counter() - started
        self._end_of_epoch(s.seconds)

    def _check_masks(self, batch: dict) -> None:
        mask = batch["mask"]
        if self.config.ignore_index is not None:
            mask = mask[mask != self.config.ignore_index]
        limit = 2 if self.mode == "binary" else self.classes
        if mask.numel() and int(mask.max()) >= limit:
            bad = [i for i, m in zip(batch["id"], batch["mask"], strict=True) if int(m.max()) >= limit]
            raise DataError(
                f"{bad[0]}: mask value {int(mask.max())} is beyond the model's classes "
                f"({'binary: 0/1' if self.mode == 'binary' else f'{self.classes} classes: 0..{self.classes - 1}'}); "
                "give --classes, or the dataset's class table / values mapping"
            )

    def _loss(self, batch: dict) -> torch.Tensor:
        acc = self.accelerator
        image = batch["image"].to(acc.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        target = batch["mask"].to(acc.device, non_blocking=True)
        with acc.autocast():
            try:
                out = self.model(image)
            except ValueError as exc:  # a norm layer that sees one value per channel, said in the model's words
                message = explain_norm_error(acc.unwrap_model(self.model, keep_torch_compile=False), exc, image)
                if message is None:
                    raise
                raise ConfigError(f"{self.config.model}: {message}") from exc
        class_logits = None
        if isinstance(out, tuple):
            out, class_logits = out
        masks = [o.float() for o in out] if isinstance(out, list) else out.float()
        loss = self.criterion(masks, target)
        if class_logits is not None and "label" in batch:
            label = batch["label"].to(acc.device)
            loss = loss + self.config.aux_loss_weight * nn.functional.cross_entropy(class_logits.float(), label)
        return loss

    def _optimizer_step(self, frozen: bool, encoder: nn.Module | None) -> None:
        acc, c, s = self.accelerator, self.config, self.state
        if frozen and encoder is not None:
            for p in encoder.parameters():
                p.grad = None
        if c.clip:
            acc.clip_grad_norm_(self.model.parameters(), c.clip)
        self.optimizer.step()
        if c.scheduler != "plateau":
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(acc.unwrap_model(self.model, keep_torch_compile=False))
        s.step += 1
        s.epoch_step += 1

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Loss and overlap metrics on the validation split, exact across processes.

        Per-sample confusion counts and losses are gathered (``gather_for_metrics`` drops
        the samples repeated to even out the last batch) and pooled over the whole split.
        """
        acc, c = self.accelerator, self.config
        was_training = model.training
        model.eval()
        counts, losses, correct = [], [], []
        for batch in self.val_loader:
            image = batch["image"].contiguous(memory_format=self.memory_format)
            with acc.autocast():
                out = model(image)
            logits = mask_logits(out).float()
            target = batch["mask"]
            loss = torch.stack([self.criterion(logits[i : i + 1], target[i : i + 1]) for i in range(len(target))])
            count = confusion_counts(logits, target, mode=self.mode, num_classes=self.classes,
                                     threshold=c.threshold, ignore_index=c.ignore_index, roi=batch.get("roi"))  # fmt: skip
            gathered = [count, loss]
            if isinstance(out, tuple) and "label" in batch:
                gathered.append((out[1].argmax(1) == batch["label"]).float())
            gathered = acc.gather_for_metrics(gathered)
            counts.append(gathered[0].cpu())
            losses.append(gathered[1].cpu())
            if len(gathered) > 2:
                correct.append(gathered[2].cpu())
        model.train(was_training)
        result = {"val_loss": float(torch.cat(losses).double().mean())}
        summary = scores(torch.cat(counts), reduction="global", class_names=self.names, mode=self.mode)
        for key in ("dice", "iou", "precision", "recall"):
            result[f"val_{key}"] = summary[key]
        if self.classes > 1:
            for name in self.names:
                result[f"val_dice_{name}"] = summary[f"dice_{name}"]
        if correct:
            result["val_cls_acc"] = float(torch.cat(correct).mean())
        return result

    # ------------------------------------------------------------------ end of epoch

    def _end_of_epoch(self, seconds: float) -> None:
        acc, c, s = self.accelerator, self.config, self.state
        self._flush_loss()
        loss_mean = torch.tensor([s.loss_sum, float(s.loss_count)], device=acc.device, dtype=torch.float64)
        loss_mean = acc.reduce(loss_mean, reduction="sum")
        row: dict[str, Any] = {
            "epoch": s.epoch + 1 if s.step else 0,
            "step": s.step,
            "lr": self.optimizer.param_groups[-1]["lr"],
            "train_loss": float(loss_mean[0] / loss_mean[1]) if loss_mean[1] else "",
        }
        row.update(self.validate(self.model))
        candidate, weights = row, "model"
        if self.ema is not None:
            ema_row = {f"ema_{k}": v for k, v in self.validate(self.ema.module).items()}
            row.update(ema_row)
            if self._better(ema_row.get(f"ema_{c.monitor}"), row.get(c.monitor)):
                candidate, weights = {k[4:]: v for k, v in ema_row.items()}, "ema"
        row["seconds"] = round(seconds, 3)
        row["samples_per_s"] = round(s.samples / seconds, 3) if seconds else 0.0
        if c.monitor not in row:
            raise ConfigError(f"--monitor {c.monitor!r}: not a metric of this run; choose one of "
                              f"{', '.join(k for k in row if k.startswith(('val_', 'train_')))}")  # fmt: skip
        value = candidate[c.monitor]
        improved = self._better(value, s.best)
        if improved:
            s.best, s.best_epoch, s.bad_epochs = value, row["epoch"], 0
            s.best_metrics = {k: v for k, v in candidate.items() if k.startswith("val_")}
            s.best_metrics["weights"] = weights
        else:
            s.bad_epochs += 1
        if c.scheduler == "plateau" and s.step:
            self.scheduler.step(row[c.monitor])
        self.rows.append(row)
        if self.main:
            if improved:
                best_model = self.ema.module if weights == "ema" else acc.unwrap_model(self.model,
                                                                                    keep_torch_compile=False)
                self._save_model("best", best_model, s.best_metrics)
            self._save_model("last", acc.unwrap_model(self.model, keep_torch_compile=False),
                             {k: v for k, v in row.items() if k.startswith("val_")})  # fmt: skip
            self.folder.write_metrics(self.rows)
            self._pictures(row)
        if c.log_with:
            acc.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=s.step)
        self.reporter.end_epoch(row, improved)
        if c.early_stop and s.bad_epochs >= c.early_stop:
            s.stopped_early = True
            self.reporter.message(f"early stop: {c.monitor} has not improved for {c.early_stop} epochs")
        if s.step:
            s.epoch += 1
        s.epoch_step, s.loss_sum, s.loss_count, s.samples, s.seconds = 0, 0.0, 0, 0, 0.0
        self._checkpoint()

    def _better(self, value: float | None, than: float | None) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if than is None:
            return True
        return value > than if self.config.monitor_mode == "max" else value < than

    def _flush_loss(self) -> None:
        """Move the running loss summed on the device into the saved state."""
        self.state.loss_sum += float(self.pending_loss)
        self.pending_loss.zero_()

    def _checkpoint(self) -> None:
        acc, s = self.accelerator, self.state
        self._flush_loss()
        tmp = self.folder.temporary_checkpoint(s.step)
        acc.wait_for_everyone()
        try:
            acc.save_state(str(tmp))
            acc.wait_for_everyone()
            if self.main:
                self.folder.finish_checkpoint(s.step, asdict(s), self.config.keep_checkpoints)
        except (OSError, SafetensorError) as exc:
            if self.main:
                shutil.rmtree(tmp, ignore_errors=True)
            raise as_os_error(exc, tmp) from exc
        acc.wait_for_everyone()

    def _save_model(self, name: str, model: nn.Module, metrics: dict[str, Any]) -> None:
        c = self.config

        def write(tmp: Path) -> None:
            numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            save_pretrained(model, tmp, class_names=self.names, preprocessing=self.preprocessing,
                            dataset=str(c.data), metrics=numbers)  # fmt: skip
            with (tmp / "README.md").open("a") as card:
                card.write(self._training_card(name, metrics))

        self.folder.replace_folder(name, write)

    def _training_card(self, name: str, metrics: dict[str, Any]) -> str:
        c, s = self.config, self.state
        which = "best validation" if name == "best" else "last epoch's validation"
        lines = ["", "## Fine-tuning", "",
                 f"- data: `{c.data}`, split: {len(self.split['train'])} training / {len(self.split['val'])} "
                 f"validation samples (`split.json` of the run)",
                 f"- epoch {s.best_epoch if name == 'best' else s.epoch + 1}, step {s.step}; {which} metrics above"
                 f"{' (EMA weights)' if metrics.get('weights') == 'ema' else ''}",
                 "- options:", ""]  # fmt: skip
        options = {k: v for k, v in c.to_dict().items() if v not in (None, {}, "")}
        lines += [f"  - {k}: `{v}`" for k, v in options.items()]
        command = f"unetzoo finetune --config {self.folder.config}"
        return "\n".join([*lines, "", f"Repeat: `{command}`", ""])

    def _pictures(self, row: dict[str, Any]) -> None:
        from ..viz import save_curves, save_samples

        save_curves(self.folder.path / "curves.png", self.rows)
        count = min(self.config.samples, len(self.plan.val))
        if not count:
            return
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        was_training = model.training
        model.eval()
        images, truths, preds, ids = [], [], [], []
        with torch.no_grad():
            for i in range(count):
                item = self.plan.val[i]
                x = item["image"][None].to(self.accelerator.device)
                with self.accelerator.autocast():
                    logits = mask_logits(model(x)).float()
                pred = (logits[0, 0] > 0).long() if self.mode == "binary" else logits[0].argmax(0)
                images.append(item["image"].numpy())
                truths.append(item["mask"].numpy())
                preds.append(pred.cpu().numpy())
                ids.append(item["id"])
        model.train(was_training)
        title = f"epoch {row['epoch']}: val_dice {row.get('val_dice', float('nan')):.4f}"
        save_samples(self.folder.path / "samples" / f"epoch_{row['epoch']:03d}.png", images, truths, preds, ids, title)


def finetune(config: FinetuneConfig, *, resume: bool = False, overwrite: bool = False,
             quiet: bool = False) -> FinetuneResult:  # fmt: skip
    """Fine-tune ``config.model`` on ``config.data`` into the run folder ``config.out``.

    ``resume`` continues from the newest complete checkpoint of an existing run (use
    :func:`unetzoo.training.setup.config_for_resume` to read its options); ``overwrite``
    replaces an existing folder. Returns where ``best/`` and ``last/`` are, and the best metrics.
    """
    return Trainer(config, resume=resume, overwrite=overwrite, quiet=quiet).fit()
