"""The flax training loop: a jitted step over split NNX state, driving the same callbacks as the torch trainer.

The network is split once (``nnx.split``) into its graph and parameters; the step is one ``jax.jit`` function of
(parameters, optimizer state, batch, schedule factor, step number) that merges the graph inside, so nothing walks the
object graph per call. Batches come from the same :func:`~textsift.batching.epoch_batches` as torch (a pure function
of seed and epoch, so a resumed run replays them) and are padded to a bucketed width and a fixed number of rows
(:mod:`.shapes`): the step compiles once per width bucket. Dropout keys are ``fold_in(key(seed), global_step)``, so a
resumed run draws the same masks as an uninterrupted one, and a checkpoint needs no random state.

Callbacks see the same :class:`~textsift.training.callbacks.TrainerState`, metrics and hooks as with torch, and ask
for a stop or a checkpoint the same way (``trainer.state.should_stop``, ``trainer.save_checkpoint()``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from textsift.backends.flax import weights as wio
from textsift.backends.flax.forward import Forward
from textsift.backends.flax.networks import BagNetwork
from textsift.backends.flax.optim import LazyRows, Loss, build_optimizer, read_rows, write_rows
from textsift.backends.flax.parallel import DataParallel
from textsift.backends.flax.shapes import NO_ROW, flat_bag_batch, padded_batch
from textsift.batching import EncodedDataset, epoch_batches
from textsift.config.schema import TrainerConfig
from textsift.errors import CheckpointError, ConfigError
from textsift.evaluation.metrics import classification_metrics, multilabel_metrics
from textsift.training.callbacks import Callback, EarlyStopping, StepLoss, TrainerState, batch_end, is_better

logger = logging.getLogger(__name__)


def _is_table(path: tuple[Any, ...], value: Any) -> bool:
    """The bag's embedding table (an nnx filter)."""
    return tuple(path) == ("embedding",)


def _kept(net: nnx.Module, batch: dict[str, jax.Array], key: jax.Array) -> jax.Array:
    """``[batch, width]``: the bag's features a padded batch's real rows keep after feature dropout."""
    mask, _ = net.features(batch, key)
    return mask & (batch["weights"] > 0)[:, None]


def param_labels(network: nnx.Module, params: Any, sparse: bool) -> Any:
    """Each parameter's optimizer group: "sparse" (the bag's table with sparse updates), "no_decay" (fewer than
    2 dimensions: biases, norms) or "decay"."""
    bag = isinstance(network, BagNetwork) and sparse

    def label(path: tuple[Any, ...], leaf: Any) -> str:
        name = wio._name(path)
        if bag and name == "embedding":
            return "sparse"
        return "decay" if np.ndim(leaf) >= 2 else "no_decay"

    return jax.tree_util.tree_map_with_path(label, params)



def _clip_all(g_rows: Any, g_rest: Any, clip: float | None) -> tuple[Any, Any]:
    """torch's clip_grad_norm_ over every gradient, the table's rows included (None: no clipping)."""
    if clip is None:
        return g_rows, g_rest
    norm = optax.tree.norm((g_rows, g_rest))
    scale = jnp.minimum(1.0, clip / (norm + 1e-6))
    return jax.tree.map(lambda g: g * scale, (g_rows, g_rest))

class FlaxTrainer:
    """Trains an NNX network (from :func:`~textsift.backends.flax.networks.build_network`) with the trainer settings.

    The same constructor and ``fit`` as the torch :class:`~textsift.backends.torch.trainer.Trainer`; ``loss_fn`` is a
    :class:`~textsift.backends.flax.optim.Loss`. ``devices``: the devices of the ``data`` mesh (all local ones).
    ``gather_rows``: the bag's SparseAdamW updates the rows a batch uses (False: the same update computed over the
    whole table, as a check).
    """

    def __init__(
        self,
        config: TrainerConfig,
        *,
        seed: int,
        model_spec: Any = None,
        label_names: Sequence[str],
        callbacks: Sequence[Callback] = (),
        checkpoint_path: Path | None = None,
        devices: list[Any] | None = None,
        gather_rows: bool = True,
    ) -> None:
        self.config = config
        self.seed = seed
        self.model_spec = model_spec
        self.label_names = list(label_names)
        self.checkpoint_path = checkpoint_path
        self.batch_size = 0
        self.state = TrainerState()
        self.callbacks: list[Callback] = list(callbacks)
        self.callbacks += [spec.build() for spec in config.callbacks]  # type: ignore[attr-defined]
        if config.early_stopping is not None:
            self.callbacks.append(EarlyStopping(config.early_stopping, config.main_metric, config.main_metric_mode))
        self.parallel = DataParallel(devices)
        self.gather_rows = gather_rows  # the bag's SparseAdamW on the rows a batch uses (False: over the whole table)
        self.model: nnx.Module | None = None
        self.graphdef: Any = None
        self.params: Any = None
        self.opt_state: Any = None
        self.best_params: Any = None
        self.tx: optax.GradientTransformation | None = None
        self.forward: Forward | None = None
        self._step: Any = None
        self.shapes_compiled: set[tuple[Any, ...]] = set()  # each training step shape run: (rows, width) or flat sizes
        self.flat = False  # the bag on one device: flat batches (see _batch)
        self.gathered = False  # ... with the batch's distinct rows gathered (SparseAdamW)

    # -- hooks ---------------------------------------------------------------------------------
    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # -- building ------------------------------------------------------------------------------
    def _batch_size(self, train: EncodedDataset) -> int:
        if self.config.batch_size != "auto":
            return int(self.config.batch_size)
        if self.model_spec is None:
            raise ConfigError("trainer.batch_size: 'auto' needs the model's spec; give the trainer model_spec=...")
        size = self.model_spec.auto_batch_size(len(train), float(train.ids.lengths.mean()) if len(train) else 0.0)
        logger.info("trainer.batch_size auto: %d (%d examples, %.0f ids each on average)", size, len(train), train.ids.lengths.mean())
        return int(size)

    def _build(self, model: nnx.Module, loss_fn: Loss) -> None:
        cfg = self.config
        if cfg.precision != "32":
            logger.info("trainer.precision %s: the flax backend trains in fp32.", cfg.precision)
        if cfg.accumulate_grad_batches != 1:
            raise ConfigError("trainer.accumulate_grad_batches: the flax backend takes each batch whole; set it to 1 "
                              "(or lower trainer.batch_size), or use backend: torch.")
        self.model = model
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        if jax.tree.leaves(rest):
            raise ConfigError("The flax network holds state other than parameters, which this trainer does not update.")
        self.graphdef = graphdef
        self.forward = Forward(graphdef)
        sparse = bool(getattr(self.model_spec, "sparse", False)) and isinstance(model, BagNetwork)
        # the bag trains on flat batches (no padding to a width) on one device; over a mesh, on padded rows
        self.flat = isinstance(model, BagNetwork) and self.parallel.size == 1
        lazy = sparse and self.gather_rows and LazyRows.applies(cfg.optimizer)
        self.gathered = self.flat and lazy
        self.params = self.parallel.replicate(params)
        if lazy:
            self._step = self._flat_sparse_step(graphdef, params, loss_fn) if self.flat else self._sparse_step(graphdef, params, loss_fn)
            return
        labels = param_labels(model, params, sparse)
        self.tx = build_optimizer(cfg.optimizer, cfg.grad_clip, lambda _: labels)
        self.opt_state = self.parallel.replicate(self.tx.init(params))
        tx, base_key, flat = self.tx, jax.random.key(self.seed), self.flat

        def step(params: Any, opt_state: Any, batch: dict[str, jax.Array], factor: jax.Array, step_number: jax.Array) -> Any:
            key = jax.random.fold_in(base_key, step_number)

            def loss_of(p: Any) -> tuple[jax.Array, jax.Array]:
                net = nnx.merge(graphdef, p)
                if flat:
                    logits, keep = net.flat_logits(batch, key)
                    occurrences = keep.sum()
                else:
                    logits = net({"ids": batch["ids"], "lengths": batch["lengths"]}, key)
                    occurrences = _kept(net, batch, key).sum().astype(jnp.float32) if sparse else jnp.float32(0)
                return loss_fn(logits, batch["labels"], batch["weights"]), occurrences

            (loss, occurrences), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
            if sparse:  # per feature occurrence, as torch's bag: Adam's sparse_eps then means the same everywhere
                grads = jax.tree.map(lambda g, lab: g * occurrences if lab == "sparse" else g, grads, labels)
            updates, opt_state = tx.update(grads, opt_state, params)
            updates = jax.tree.map(lambda u: u * factor, updates)
            return optax.apply_updates(params, updates), opt_state, loss

        self._step = jax.jit(step, donate_argnums=(0, 1))

    def _sparse_optimizers(self, params: Any) -> tuple[Any, LazyRows]:
        """The two optimizers of a SparseAdamW step: the dense one over everything but the table (clipping is done
        by the step, over every gradient), and the lazy rows of the table; their state starts in ``opt_state``."""
        table, rest = nnx.split_state(params, _is_table, ...)
        rest_labels = param_labels(self.model, rest, False)
        tx = build_optimizer(self.config.optimizer, None, lambda _: rest_labels)
        lazy = LazyRows(self.config.optimizer)
        self.tx = tx
        self.opt_state = self.parallel.replicate((tx.init(rest), lazy.init(jax.tree.leaves(table)[0])))
        return tx, lazy

    def _sparse_step(self, graphdef: Any, params: Any, loss_fn: Loss) -> Any:
        """The bag's step with SparseAdamW: the table's rows a batch uses are gathered (``jnp.unique`` at a fixed
        size), differentiated and updated lazily, as torch's sparse gradients; the rest takes the dense optimizer.
        A step costs what the batch touches, not the size of the table (millions of n-gram rows on IMDB)."""
        tx, lazy = self._sparse_optimizers(params)
        base_key, clip = jax.random.key(self.seed), self.config.grad_clip

        def step(params: Any, opt_state: Any, batch: dict[str, jax.Array], factor: jax.Array, step_number: jax.Array) -> Any:
            key = jax.random.fold_in(base_key, step_number)
            table, rest = nnx.split_state(params, _is_table, ...)
            ids = batch["ids"]
            rows, inverse = jnp.unique(ids.reshape(-1), size=ids.size, fill_value=NO_ROW, return_inverse=True)
            gathered = jax.tree.map(lambda t: t.at[rows].get(mode="fill", fill_value=0.0, indices_are_sorted=True), table)
            local = {"ids": inverse.reshape(ids.shape), "lengths": batch["lengths"], "weights": batch["weights"]}

            def loss_of(g: Any, r: Any) -> tuple[jax.Array, jax.Array]:
                net = nnx.merge(graphdef, g, r)
                return loss_fn(net(local, key), batch["labels"], batch["weights"]), _kept(net, local, key)

            (loss, kept), (g_rows, g_rest) = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(gathered, rest)
            g_rows = jax.tree.map(lambda g: g * kept.sum().astype(jnp.float32), g_rows)
            used = jax.ops.segment_sum(kept.reshape(-1).astype(jnp.float32), inverse.reshape(-1), rows.shape[0]) > 0
            g_rows, g_rest = _clip_all(g_rows, g_rest, clip)
            updates, rest_state = tx.update(g_rest, opt_state[0], rest)
            rest = optax.apply_updates(rest, jax.tree.map(lambda u: u * factor, updates))
            new_table, lazy_state = lazy.update(jax.tree.leaves(table)[0], rows, jax.tree.leaves(gathered)[0],
                                                jax.tree.leaves(g_rows)[0], used, opt_state[1], factor)
            table = jax.tree.map(lambda _: new_table, table)
            return nnx.merge_state(table, rest), (rest_state, lazy_state), loss

        return jax.jit(step, donate_argnums=(0, 1))

    def _flat_sparse_step(self, graphdef: Any, params: Any, loss_fn: Loss) -> Any:
        """The bag's step with SparseAdamW on one device, from a flat batch (:func:`.shapes.flat_bag_batch`): the
        batch's distinct table rows (found on the host, sorted) are gathered, differentiated and updated lazily, as
        torch's sparse gradients; the rest takes the dense optimizer. Every gather and scatter of the table reads its
        rows in order, and the texts' ids are pooled by segment sums, with no padding to a width.

        Two jitted functions: ``step`` computes everything and writes nothing of the table; ``write`` sets the
        table's rows and their moments in place (donated). In one function, XLA's CPU backend copied the
        table and each moment whole (about 115 MB each on IMDB) instead of updating them in place."""
        tx, lazy = self._sparse_optimizers(params)
        base_key, clip = jax.random.key(self.seed), self.config.grad_clip

        def step(params: Any, opt_state: Any, batch: dict[str, jax.Array], factor: jax.Array, step_number: jax.Array) -> Any:
            key = jax.random.fold_in(base_key, step_number)
            table, rest = nnx.split_state(params, _is_table, ...)
            rows = batch["rows"]
            gathered = jax.tree.map(lambda t: read_rows(t, rows), table)

            def loss_of(g: Any, r: Any) -> tuple[jax.Array, jax.Array]:
                logits, keep = nnx.merge(graphdef, g, r).flat_logits(batch, key)
                return loss_fn(logits, batch["labels"], batch["weights"]), keep

            (loss, keep), (g_rows, g_rest) = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(gathered, rest)
            g_rows = jax.tree.map(lambda g: g * keep.sum(), g_rows)  # per feature occurrence, as torch's bag
            used = jax.ops.segment_sum(keep, batch["feat"], rows.shape[0], indices_are_sorted=True) > 0
            g_rows, g_rest = _clip_all(g_rows, g_rest, clip)
            updates, rest_state = tx.update(g_rest, opt_state[0], rest)
            rest = optax.apply_updates(rest, jax.tree.map(lambda u: u * factor, updates))
            lazy_state = opt_state[1]
            count = lazy_state["count"] + 1
            moments = read_rows(lazy_state["moments"], rows) if "moments" in lazy_state else None
            new_rows = lazy.rows_after(jax.tree.leaves(gathered)[0], moments, jax.tree.leaves(g_rows)[0], used, count, factor)
            return rest, rest_state, count, new_rows, loss

        def write(params: Any, opt_state: Any, rest: Any, rest_state: Any, count: jax.Array, rows: jax.Array,
                  new_rows: dict[str, jax.Array]) -> Any:
            table, _ = nnx.split_state(params, _is_table, ...)
            table = jax.tree.map(lambda t: write_rows(t, rows, new_rows["table"]), table)
            lazy_state = {"count": count}
            if "moments" in new_rows:
                lazy_state["moments"] = write_rows(opt_state[1]["moments"], rows, new_rows["moments"])
            return nnx.merge_state(table, rest), (rest_state, lazy_state)

        compute, store = jax.jit(step), jax.jit(write, donate_argnums=(0, 1))

        def run(params: Any, opt_state: Any, batch: dict[str, jax.Array], factor: jax.Array, step_number: jax.Array) -> Any:
            rest, rest_state, count, new_rows, loss = compute(params, opt_state, batch, factor, step_number)
            params, opt_state = store(params, opt_state, rest, rest_state, count, batch["rows"], new_rows)
            return params, opt_state, loss

        return run

    def _batch(self, train: EncodedDataset, index: np.ndarray, rows: int) -> dict[str, Any]:
        """The training batch of ``index``, on the devices: flat for the bag on one device, padded otherwise."""
        assert train.labels is not None
        if self.flat:
            batch = flat_bag_batch(train.ids, index, rows, train.labels, gather_rows=self.gathered)
            self.shapes_compiled.add(("flat", batch["feat"].shape[0], batch["rows"].shape[0] if "rows" in batch else 0))
        else:
            batch = padded_batch(train.ids, index, rows, train.labels)
            self.shapes_compiled.add(batch["ids"].shape)
        return self.parallel.shard(batch)

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        arrays = wio.flatten(self.params, "model/")
        arrays.update(wio.flatten(self.opt_state, "opt/"))
        if self.best_params is not None:
            arrays.update(wio.flatten(self.best_params, "best/"))
        meta = {"state": self.state.to_json(), "callbacks": [cb.state_dict() for cb in self.callbacks]}
        wio.save_file(self.checkpoint_path, arrays, meta)
        logger.debug("Checkpoint saved at step %d", self.state.global_step)

    def _load(self, path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = wio.load_checkpoint(path)
        try:
            self.params = self.parallel.replicate(wio.unflatten(self.params, arrays, "model/", source=str(path)))
            self.opt_state = self.parallel.replicate(wio.unflatten(self.opt_state, arrays, "opt/", source=str(path)))
            if any(k.startswith("best/") for k in arrays):
                self.best_params = self.parallel.replicate(wio.unflatten(self.params, arrays, "best/", source=str(path)))
        except Exception as exc:
            raise CheckpointError(f"Checkpoint '{path}' does not fit this model: {exc}") from None
        return arrays, meta

    def _resume(self, path: Path) -> None:
        _, meta = self._load(path)
        self.state = TrainerState.from_json(meta["state"])
        for cb, cb_state in zip(self.callbacks, meta["callbacks"]):
            cb.load_state_dict(cb_state)
        logger.info("Resumed from %s: epoch %d, step %d of the epoch", path, self.state.epoch + 1, self.state.step_in_epoch)

    def _warm_start(self, path: Path) -> None:
        """Weights, optimizer moments and the step count from another run's checkpoint; learning rate, weight decay
        and schedule from this run's config (population-based training's exploit step)."""
        best = self.best_params
        _, meta = self._load(path)
        self.best_params = best
        previous = TrainerState.from_json(meta["state"])
        self.state.epoch, self.state.global_step = previous.epoch, previous.global_step
        logger.info("Warm start from %s: epoch %d, step %d, with this run's hyperparameters", path, previous.epoch,
                    previous.global_step)

    # -- the loop ------------------------------------------------------------------------------
    def _epoch_batches(self, lengths: np.ndarray, epoch: int) -> list[np.ndarray]:
        return epoch_batches(lengths, self.batch_size, seed=self.seed, epoch=epoch, bucket=self.config.bucket_by_length)

    def fit(
        self,
        model: nnx.Module,
        train: EncodedDataset,
        validation: EncodedDataset | None,
        *,
        loss_fn: Loss,
        resume: bool = False,
        warm_start: Path | None = None,
    ) -> TrainerState:
        cfg = self.config
        self.batch_size = self._batch_size(train)
        rows = -(-self.batch_size // self.parallel.size) * self.parallel.size  # a multiple of the devices
        self._build(model, loss_fn)
        lengths = train.ids.lengths
        steps_per_epoch = len(self._epoch_batches(lengths, 0))
        self.state.steps_per_epoch = steps_per_epoch
        self.state.total_steps = steps_per_epoch * cfg.epochs
        total = max(self.state.total_steps, 1)
        if resume and self.checkpoint_path is not None:
            self._resume(self.checkpoint_path)
        elif warm_start is not None:
            self._warm_start(warm_start)
        assert train.labels is not None
        logger.info("Flax backend: %s, batches of %d rows", self.parallel.describe(), rows)
        self._call("on_fit_start")
        peak = cfg.optimizer.lr
        while self.state.epoch < cfg.epochs and not self.state.should_stop:
            self._call("on_epoch_start")
            batches = self._epoch_batches(lengths, self.state.epoch)
            skip = self.state.begin_epoch()
            loop_start, examples = time.perf_counter(), 0
            todo = batches[skip:]
            upcoming = self._batch(train, todo[0], rows) if todo else None
            for position, index in enumerate(todo):
                factor = cfg.scheduler.factor(self.state.global_step, total)  # type: ignore[attr-defined]
                self.params, self.opt_state, loss = self._step(
                    self.params, self.opt_state, upcoming, np.float32(factor), np.int32(self.state.global_step)
                )
                # the next batch is made while the step runs (jax dispatches it asynchronously); callbacks below
                # still see this step's parameters and loss
                upcoming = self._batch(train, todo[position + 1], rows) if position + 1 < len(todo) else None
                step_loss = StepLoss(loss)  # read only where a callback needs the number (jax runs ahead until then)
                examples += len(index)
                self.state.lr = peak * factor
                self.state.record_step(step_loss)
                batch_end(self.callbacks, self, step_loss)
            metrics = self.state.finish_epoch(examples, time.perf_counter() - loop_start)
            if (loss := self.state.epoch_loss()) is not None:
                metrics["train/loss"] = loss
            if validation is not None:
                metrics.update(self.evaluate(validation, prefix="val", loss_fn=loss_fn))
            self._track_best(metrics)
            self.state.history.append({k: v for k, v in metrics.items() if "/per_label/" not in k})
            self._call("on_epoch_end", metrics)
            logger.info("epoch %d/%d: %s", self.state.epoch, cfg.epochs,
                        ", ".join(f"{k}={metrics[k]:.4f}" for k in self._headline(metrics)))
        if not self.state.stop_reason:
            self.state.stop_reason = f"finished all {cfg.epochs} epochs"
        logger.info("Training stopped: %s", self.state.stop_reason)
        self._call("on_loop_end")
        if cfg.restore_best and self.best_params is not None:
            self.params = self.best_params
            logger.info("Restored the weights of epoch %s (%s = %.4f)", self.state.best_epoch, cfg.main_metric, self.state.best_metric)
        nnx.update(model, jax.device_get(self.params))
        self._call("on_fit_end")
        return self.state

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
            if self.config.restore_best:  # a copy: the step donates the parameters' buffers to its result
                self.best_params = jax.tree.map(jnp.copy, self.params)

    def predict_logits(self, data: EncodedDataset) -> np.ndarray:
        assert self.forward is not None
        return self.forward.logits(self.params, data, self.config.eval_batch_size, self.parallel)

    def evaluate(self, data: EncodedDataset, *, prefix: str, loss_fn: Loss | None = None) -> dict[str, float]:
        assert data.labels is not None
        logits = self.predict_logits(data)
        if data.labels.ndim == 2:  # multilabel: sigmoid >= 0.5 until thresholds are tuned after training
            metrics = multilabel_metrics(data.labels, logits > 0, self.label_names, prefix)
        else:
            metrics = classification_metrics(data.labels, logits.argmax(1), self.label_names, prefix)
        if loss_fn is not None:
            metrics[f"{prefix}/loss"] = float(loss_fn(jnp.asarray(logits), jnp.asarray(data.labels), jnp.ones(len(data), jnp.float32)))
        return metrics
