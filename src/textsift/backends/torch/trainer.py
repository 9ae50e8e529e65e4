"""The PyTorch training loop. It orchestrates; the model computes; callbacks do the side effects."""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textsift.backends.torch.runtime import inference_fn, resolve_device  # noqa: F401 (resolve_device: also imported from here by the run)
from textsift.batching import EncodedDataset, collate, eval_batches, epoch_batches
from textsift.config.schema import TrainerConfig
from textsift.errors import ConfigError
from textsift.evaluation.metrics import classification_metrics, multilabel_metrics
from textsift.registry import import_path
from textsift.backends.torch import checkpoint as ckpt
from textsift.backends.torch import distributed
from textsift.backends.torch import dropout as fast_dropout
from textsift.training.callbacks import Callback, EarlyStopping, StepLoss, TrainerState, batch_end, is_better
from textsift.backends.torch.optim import SPARSE_CAPABLE

logger = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (avx512_bf16 or AMX). Without them torch emulates
    bf16 and autocast is slower than fp32. Measured on an AMD EPYC with avx512_bf16, 2 threads: a MiniLM
    fine-tuning step 1.47x faster under bf16 autocast (BENCHMARKS.md, fine-tuning notes)."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and bool(check()) for check in checks)


def to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items() if k != "index"}


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module, data: EncodedDataset, fmt: str, batch_size: int, device: torch.device
) -> np.ndarray:
    """Logits for every example, in dataset order (batches are length-sorted internally)."""
    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    for batch in data.iter_batches(eval_batches(data.ids.lengths, batch_size), fmt):
        logits = inference_fn(model)(to_tensors(batch, device)).float().cpu().numpy()
        if out is None:
            out = np.empty((len(data), logits.shape[1]), dtype=np.float32)
        out[batch["index"]] = logits
    model.train(was_training)
    return out if out is not None else np.zeros((0, 0), np.float32)


def solver_targets(
    loss_fn: torch.nn.Module, labels: np.ndarray, num_labels: int,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """What a model fitted by a solver (the linear model) fits for ``loss_fn``: ``(labels, probabilities, sample
    weights)``, the last two None when the labels alone say it (the labels: the training targets, or for soft targets
    each example's most probable label, which ``class_weight`` weighs by).

    The solver minimises the log-loss (softmax cross-entropy, or a sigmoid per label), so every setting of the
    configured loss must become its targets or weights, or be refused: never silently dropped. Class weights
    (``class_weights``, multilabel ``pos_weight``) become each example's (each example and label's) weight, label
    smoothing the targets ``(1 - e) one-hot + e / K``; a loss that says what a solver fits (distillation:
    ``solver_targets``) is asked. Any other loss is a ConfigError."""
    if hasattr(loss_fn, "solver_targets"):
        soft = loss_fn.solver_targets(labels)
        if soft is not None:
            return soft.argmax(1), soft, None
        loss_fn = loss_fn.base  # plain labels: the loss it wraps
    if isinstance(loss_fn, torch.nn.CrossEntropyLoss) and labels.ndim == 1:
        if loss_fn.ignore_index >= 0 and (labels == loss_fn.ignore_index).any():
            raise ConfigError("trainer.loss: ignore_index is not supported by the solver of this model.")
        weights = None if loss_fn.weight is None else loss_fn.weight.detach().cpu().double().numpy()[labels]
        if not loss_fn.label_smoothing:
            return labels, None, weights
        e = float(loss_fn.label_smoothing)
        smooth = np.full((len(labels), num_labels), e / num_labels)
        smooth[np.arange(len(labels)), labels] += 1.0 - e
        return labels, smooth, weights
    if isinstance(loss_fn, torch.nn.BCEWithLogitsLoss) and labels.ndim == 2 and loss_fn.weight is None:
        if loss_fn.pos_weight is None:
            return labels, None, None
        pos = loss_fn.pos_weight.detach().cpu().double().numpy()
        return labels, None, np.where(labels > 0, pos[None, :], 1.0)
    raise ConfigError(f"trainer.loss: {type(loss_fn).__name__} cannot be minimised by the solver that fits this model "
                      "(its log-loss is cross-entropy, or binary cross-entropy per label for multilabel). Use trainer.loss "
                      "cross_entropy or bce (their class weights, label smoothing and pos_weight are honoured).")


class Trainer:
    def __init__(
        self,
        config: TrainerConfig,
        *,
        seed: int,
        model_spec: Any = None,
        label_names: Sequence[str],
        callbacks: Sequence[Callback] = (),
        checkpoint_path: Path | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.label_names = list(label_names)
        self.checkpoint_path = checkpoint_path
        self.model_spec = model_spec
        self.batch_size = 0
        self.accumulate = config.accumulate_grad_batches
        self.autocast_dtype: torch.dtype | None = None
        self.ddp: Any = None
        self.scaler: Any = None
        self.device = resolve_device(config.device)
        self.state = TrainerState()
        self.callbacks: list[Callback] = list(callbacks)
        self.callbacks += [spec.build() for spec in config.callbacks]  # type: ignore[attr-defined]
        if config.early_stopping is not None:
            self.callbacks.append(EarlyStopping(config.early_stopping, config.main_metric, config.main_metric_mode))
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.best_weights: dict[str, torch.Tensor] | None = None

    # -- hooks ---------------------------------------------------------------------------------
    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # -- building ------------------------------------------------------------------------------
    def _setup_precision(self) -> None:
        wanted = self.config.precision
        if wanted == "32":
            return
        dtype = torch.bfloat16 if wanted == "bf16" else torch.float16
        if self.device.type == "cpu" and wanted == "bf16" and cpu_has_native_bf16():
            # CPU autocast: matrix products in bf16 (avx512_bf16 / AMX), weights, optimizer and loss in fp32
            self.autocast_dtype = dtype
            logger.info("trainer.precision bf16: bf16 autocast on this CPU (it has native bf16 instructions).")
            return
        if self.device.type != "cuda" or (wanted == "bf16" and not torch.cuda.is_bf16_supported()):
            logger.info("trainer.precision %s: %s has no fast half precision; training in fp32.", wanted, self.device)
            return
        self.autocast_dtype = dtype
        if wanted == "fp16":
            self.scaler = torch.amp.GradScaler("cuda")

    def _autocast(self) -> Any:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _step(self, batch_index: np.ndarray, train: EncodedDataset, fmt: str, loss_fn: torch.nn.Module) -> torch.Tensor | float:
        """One optimizer update over ``batch_index``, in ``self.accumulate`` micro-batches.

        Each micro-batch's mean loss is weighted by its share of the batch, so the update equals that
        of the whole batch at once. Out of memory: halve the micro-batch, double the accumulation, retry.
        """
        model, optimizer = self.model, self.optimizer
        assert model is not None and optimizer is not None
        forward = self.ddp if self.ddp is not None else model
        world = distributed.world_size()
        local = distributed.shard(batch_index)  # this rank's part; DDP averages the ranks' gradients
        while True:
            optimizer.zero_grad(set_to_none=True)
            total: torch.Tensor | float = 0.0  # a tensor on the device after the first micro-batch: not read here
            try:
                parts = np.array_split(local, min(self.accumulate, len(local)))
                for i, part in enumerate(parts):
                    tensors = to_tensors(collate(train.ids, part, fmt, train.labels), self.device)
                    sync = self.ddp is None or i == len(parts) - 1
                    with contextlib.nullcontext() if sync else self.ddp.no_sync():
                        with self._autocast():  # the forward only: backward follows the forward's dtypes
                            logits = forward(tensors)
                        # weighted so that the (all-reduced) gradient is that of the whole global batch
                        loss = loss_fn(logits.float(), tensors["labels"]) * (len(part) * world / len(batch_index))
                        if self.scaler is not None:
                            self.scaler.scale(loss).backward()
                        else:
                            loss.backward()
                    total += loss.detach() * (len(batch_index) / (world * len(local)))  # this rank's mean
                break
            except torch.OutOfMemoryError:
                micro = -(-len(local) // self.accumulate)
                if micro <= 1:
                    raise
                optimizer.zero_grad(set_to_none=True)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.accumulate *= 2
                logger.warning(
                    "Out of memory with micro-batches of %d: halving them to %d and doubling gradient accumulation "
                    "to %d; the effective batch stays %d.", micro, -(-len(local) // self.accumulate),
                    self.accumulate, len(batch_index),
                )
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], self.config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        return total

    def _epoch_batches(self, lengths: np.ndarray, epoch: int) -> list[np.ndarray]:
        """The global batches of one epoch; the schedule's length is counted from this same list."""
        batches = epoch_batches(lengths, self.batch_size, seed=self.seed, epoch=epoch, bucket=self.config.bucket_by_length)
        world = distributed.world_size()
        return [b for b in batches if len(b) >= world] if world > 1 else batches  # every rank needs an example

    def _batch_size(self, train: EncodedDataset, model: torch.nn.Module) -> int:
        if self.config.batch_size != "auto":
            return int(self.config.batch_size)
        if self.model_spec is None:
            raise ConfigError("trainer.batch_size: 'auto' needs the model's spec; give the Trainer model_spec=...")
        # the ids the trained part reads (linear_bag's bag member: the word n-grams only, not the solver's characters)
        lengths = model.trained_lengths(train.ids) if hasattr(model, "trained_lengths") else train.ids.lengths
        mean = float(lengths.mean()) if len(train) else 0.0
        size = self.model_spec.auto_batch_size(len(train), mean)
        logger.info("trainer.batch_size auto: %d (%d examples, %.0f ids each on average)", size, len(train), mean)
        return size

    def _build_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        spec = self.config.optimizer
        cls = import_path(spec.type)
        sparse = model.sparse_parameters() if hasattr(model, "sparse_parameters") else []
        if sparse and cls.__name__ not in SPARSE_CAPABLE:
            raise ConfigError(
                f"trainer.optimizer: {spec.type} cannot update the sparse embeddings of this model. Use "
                "textsift.training.optim:SparseAdamW, torch.optim:Adagrad or torch.optim:SGD, or set model.sparse: false."
            )
        sparse_ids = {id(p) for p in sparse}
        trained = [p for p in model.parameters() if p.requires_grad]  # (a frozen or solved part stays out)
        no_decay = [p for p in trained if p.ndim < 2 and id(p) not in sparse_ids]
        decay = [p for p in trained if p.ndim >= 2 and id(p) not in sparse_ids]
        groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        if sparse:
            groups.append({"params": sparse, "weight_decay": 0.0})
        elif hasattr(model, "parameter_groups"):  # the model's own rates (a transformer's layer_lr_decay, head_lr)
            groups = model.parameter_groups(spec.lr, spec.weight_decay)
        kwargs = spec.kwargs()
        if "weight_decay" not in inspect.signature(cls.__init__).parameters:
            kwargs.pop("weight_decay")
            for g in groups:
                g.pop("weight_decay", None)
        if self._fuse(cls, kwargs, sparse, model):
            kwargs["fused"] = True
        return cls([g for g in groups if g["params"]], **kwargs)

    def _fuse(self, cls: type, kwargs: dict[str, Any], sparse: list, model: torch.nn.Module) -> bool:
        """Adam and AdamW take the fused kernel unless the config chose (``fused`` or ``foreach``): on a CPU torch
        otherwise updates one tensor at a time, 0.3-0.5 s a step for MiniLM's 22.7M weights where the fused kernel
        takes 0.04 s (2 threads). The update is the same up to float rounding."""
        if cls not in (torch.optim.Adam, torch.optim.AdamW) or "fused" in kwargs or "foreach" in kwargs or sparse:
            return False
        if kwargs.get("differentiable") or self.device.type not in ("cpu", "cuda"):
            return False
        return all(p.is_floating_point() for p in model.parameters())

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if self.checkpoint_path is None or not distributed.is_main():
            return
        meta = {"state": self.state.to_json(), "callbacks": [cb.state_dict() for cb in self.callbacks]}
        ckpt.save_checkpoint(
            self.checkpoint_path, model=self.model, optimizer=self.optimizer,  # type: ignore[arg-type]
            scheduler=self.scheduler, best_weights=self.best_weights, meta=meta,
        )
        logger.debug("Checkpoint saved at step %d", self.state.global_step)

    def _resume(self, path: Path) -> None:
        tensors, meta = ckpt.load_checkpoint(path)
        self.best_weights = ckpt.restore(
            tensors, meta, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler  # type: ignore[arg-type]
        )
        self.state = TrainerState.from_json(meta["state"])
        for cb, cb_state in zip(self.callbacks, meta["callbacks"]):
            cb.load_state_dict(cb_state)
        logger.info(
            "Resumed from %s: epoch %d, step %d of the epoch", path, self.state.epoch + 1, self.state.step_in_epoch
        )

    def _warm_start(self, path: Path) -> None:
        """Continue from another run's checkpoint with *this* run's hyperparameters (population-based
        training's exploit step): weights, optimizer moments and the step count come from the checkpoint;
        learning rate, weight decay and the schedule (warmup) from the current config."""
        tensors, meta = ckpt.load_checkpoint(path)
        if self.optimizer is None:  # a solver model: the weights are the whole state
            ckpt.restore(tensors, meta, model=self.model, optimizer=None, scheduler=None)  # type: ignore[arg-type]
            previous = TrainerState.from_json(meta["state"])
            self.state.epoch, self.state.global_step = previous.epoch, previous.global_step
            return
        # the configured rate: a schedule has already scaled "lr" by its factor at step 0 (warmup)
        fresh = [(g.get("initial_lr", g["lr"]), g.get("weight_decay")) for g in self.optimizer.param_groups]  # type: ignore[union-attr]
        ckpt.restore(tensors, meta, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)  # type: ignore[arg-type]
        for group, (lr, wd) in zip(self.optimizer.param_groups, fresh):  # type: ignore[union-attr]
            group["lr"] = group["initial_lr"] = lr
            if wd is not None:
                group["weight_decay"] = wd
        previous = TrainerState.from_json(meta["state"])
        steps = previous.global_step
        self.scheduler = self.config.scheduler.build(self.optimizer, self.state.total_steps)  # type: ignore[attr-defined]
        for _ in range(steps):  # the new schedule, at the step the checkpoint reached
            self.scheduler.step()
        self.state.epoch, self.state.global_step = previous.epoch, steps
        logger.info("Warm start from %s: epoch %d, step %d, with this run's hyperparameters", path, previous.epoch, steps)

    # -- the loop ------------------------------------------------------------------------------
    def fit(
        self,
        model: torch.nn.Module,
        train: EncodedDataset,
        validation: EncodedDataset | None,
        *,
        loss_fn: torch.nn.Module,
        resume: bool = False,
        warm_start: Path | None = None,
    ) -> TrainerState:
        cfg = self.config
        fmt = getattr(model, "input_format", "padded")
        self.batch_size = self._batch_size(train, model)
        self.model = model.to(self.device)
        if cfg.compile:  # in place: the module, its state_dict keys and what is saved stay the same; the compiled
            model.compile()  # graph draws its own dropout masks (inductor's generator), so no swap below
        elif self.device.type == "cpu" and fast_dropout.native_mask_is_slow():  # torch's CPU masks: one element at a time
            swapped = fast_dropout.use_fast_dropout(model) + fast_dropout.use_fast_attention_dropout(model)
            logger.debug("Dropout masks drawn 64 bits per four elements in %d modules", swapped)
        loss_fn = loss_fn.to(self.device)
        self._setup_precision()
        # a model fitted by a solver to convergence (linear): no optimizer, no epochs (constructing any torch optimizer
        # imports torch._dynamo: about 1.5 s that a solver run need not wait for); one that also has members to train
        # (linear_bag) is solved first, then trains the rest for its epochs
        then_train = bool(getattr(model, "trains_after_solve", False))
        solver = hasattr(model, "solve") and not then_train
        self.optimizer = None if solver else self._build_optimizer(model)
        if distributed.active():
            if hasattr(model, "sparse_parameters") and model.sparse_parameters():
                raise ConfigError(
                    "Distributed training: the sparse embeddings of this model do not train under "
                    "DistributedDataParallel. Set model.sparse: false, or train it in one process (it takes seconds)."
                )
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(model, device_ids=ids)
        lengths = train.ids.lengths
        steps_per_epoch = len(self._epoch_batches(lengths, 0))
        self.scheduler = None if solver else cfg.scheduler.build(self.optimizer, steps_per_epoch * cfg.epochs)  # type: ignore[attr-defined]
        self.state.steps_per_epoch = steps_per_epoch
        self.state.total_steps = steps_per_epoch * cfg.epochs
        if resume and self.checkpoint_path is not None:
            self._resume(self.checkpoint_path)
        elif warm_start is not None:
            self._warm_start(warm_start)
        assert train.labels is not None
        self._call("on_fit_start")
        model.train()
        if solver:
            self._solve(model, train, validation, loss_fn)
        elif then_train and self.state.global_step == 0 and self.state.epoch == 0:  # (resumed: the checkpoint has it)
            info = self._solve_part(model, train, loss_fn)
            logger.info("Solved the fixed part of the model (%d iterations, %.1f s); training the rest", info["iterations"],
                        info["seconds"])
        while self.state.epoch < cfg.epochs and not self.state.should_stop and not solver:
            self._call("on_epoch_start")
            batches = self._epoch_batches(lengths, self.state.epoch)
            skip = self.state.begin_epoch()
            if hasattr(model, "on_train_epoch_start"):
                model.on_train_epoch_start(self.state.epoch)  # e.g. freeze or unfreeze layers
            loop_start, examples = time.perf_counter(), 0
            for batch_index in batches[skip:]:
                loss = StepLoss(self._step(batch_index, train, fmt, loss_fn))
                examples += len(batch_index)
                self.state.lr = max(g["lr"] for g in self.optimizer.param_groups)
                self.scheduler.step()
                self.state.record_step(loss)
                batch_end(self.callbacks, self, loss)
            metrics = self.state.finish_epoch(examples, time.perf_counter() - loop_start)
            if (loss := self.state.epoch_loss()) is not None:
                metrics["train/loss"] = distributed.all_mean(loss)
            if validation is not None:
                metrics.update(self.evaluate(validation, prefix="val", loss_fn=loss_fn))
            self._track_best(metrics)
            self.state.history.append({k: v for k, v in metrics.items() if "/per_label/" not in k})
            self._call("on_epoch_end", metrics)
            logger.info(
                "epoch %d/%d: %s", self.state.epoch, cfg.epochs,
                ", ".join(f"{k}={metrics[k]:.4f}" for k in self._headline(metrics)),
            )
        if not self.state.stop_reason:
            self.state.stop_reason = f"finished all {cfg.epochs} epochs"
        logger.info("Training stopped: %s", self.state.stop_reason)
        self._call("on_loop_end")
        if cfg.restore_best and self.best_weights is not None:
            model.load_state_dict(self.best_weights)
            logger.info("Restored the weights of epoch %s (%s = %.4f)", self.state.best_epoch, cfg.main_metric, self.state.best_metric)
        self._call("on_fit_end")
        return self.state

    def _solve(self, model: torch.nn.Module, train: EncodedDataset, validation: EncodedDataset | None, loss_fn: torch.nn.Module) -> None:
        """Fit a solver model as one 'epoch', with the same validation metrics, best tracking and callbacks."""
        if self.state.epoch >= 1:  # resumed after the fit: nothing left to do
            return
        self._call("on_epoch_start")
        info = self._solve_part(model, train, loss_fn)
        self.state.epoch = 1
        self.state.global_step = int(info["iterations"])
        metrics = {"epoch": 1.0, "lr": 0.0, "train/examples_per_s": len(train) / max(info["seconds"], 1e-9),
                   "train/loss": float(info["loss"])}
        if validation is not None:
            metrics.update(self.evaluate(validation, prefix="val", loss_fn=loss_fn))
        self._track_best(metrics)
        self.state.history.append({k: v for k, v in metrics.items() if "/per_label/" not in k})
        self._call("on_epoch_end", metrics)
        logger.info("fitted: %s", ", ".join(f"{k}={metrics[k]:.4f}" for k in self._headline(metrics)))
        self.state.stop_reason = (f"the solver converged in {info['iterations']} iterations" if info["converged"]
                                  else f"the solver stopped at its {info['iterations']} iterations limit")

    def _solve_part(self, model: torch.nn.Module, train: EncodedDataset, loss_fn: torch.nn.Module) -> dict[str, Any]:
        """Run the model's solver on the training data, fitting the loss the config asks for (see :func:`solver_targets`)."""
        assert train.labels is not None
        labels, probabilities, weights = solver_targets(loss_fn, train.labels, len(self.label_names))
        return model.solve(train.ids, labels, probabilities=probabilities, sample_weight=weights)  # type: ignore[operator]

    def _headline(self, metrics: dict[str, float]) -> list[str]:
        keys = ["train/loss", "val/loss", "val/accuracy", "val/macro_f1", self.config.main_metric]
        return list(dict.fromkeys(k for k in keys if k in metrics))

    def _track_best(self, metrics: dict[str, float]) -> None:
        key = self.config.main_metric
        if key not in metrics:
            available = ", ".join(sorted(k for k in metrics if "/per_label/" not in k))
            raise ConfigError(f"trainer.main_metric: metric '{key}' was not logged. Available: {available}.")
        if is_better(metrics[key], self.state.best_metric, self.config.main_metric_mode):
            self.state.best_metric = metrics[key]
            self.state.best_epoch = self.state.epoch
            if self.config.restore_best:
                self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}  # type: ignore[union-attr]

    def evaluate(self, data: EncodedDataset, *, prefix: str, loss_fn: torch.nn.Module | None = None) -> dict[str, float]:
        assert self.model is not None and data.labels is not None
        fmt = getattr(self.model, "input_format", "padded")
        if distributed.active():  # each rank scores its share; every rank gets all logits
            local = np.arange(distributed.rank(), len(data), distributed.world_size())
            part = EncodedDataset(data.ids.take(local), None)
            logits = distributed.gather_rows(
                predict_logits(self.model, part, fmt, self.config.eval_batch_size, self.device), local, len(data)
            )
        else:
            logits = predict_logits(self.model, data, fmt, self.config.eval_batch_size, self.device)
        if data.labels.ndim == 2:  # multilabel: sigmoid >= 0.5 until thresholds are tuned after training
            metrics = multilabel_metrics(data.labels, logits > 0, self.label_names, prefix)
        else:
            metrics = classification_metrics(data.labels, logits.argmax(1), self.label_names, prefix)
        if loss_fn is not None:
            with torch.inference_mode():
                metrics[f"{prefix}/loss"] = float(loss_fn(torch.from_numpy(logits).to(self.device), torch.from_numpy(data.labels).to(self.device)))
        return metrics
