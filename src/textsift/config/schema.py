"""The config schema: every setting of a run, with its type and default.

``textsift config schema`` prints it as JSON Schema; ``textsift config show CONFIG`` prints a config
with every default filled in. Components (tokenizer, model, loss, ...) are validated against the
settings of the class registered under their ``type``.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from textsift import registry
from textsift.config.spec import Component, ComponentField, Section
from textsift.errors import RegistryError


class _DataSourceField(ComponentField):
    """A data source: a file path (string), or ``{type: DATASET, ...}`` for a registered generator."""

    def _validate(self, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                raise PydanticCustomError("data_source", "expected a file path, got an empty string")
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "data_source", "expected a file path or {example}, got {got}",
                {"got": type(value).__name__, "example": "{type: DATASET, ...}"},
            )
        return super()._validate(value)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        return {"anyOf": [{"type": "string", "description": "a data file"}, super().__get_pydantic_json_schema__(schema, handler)]}


DataSource = Annotated[Any, _DataSourceField(registry.datasets)]


class DataConfig(Section):
    train: DataSource = Field(description="Training data: a file, or {type: DATASET, ...} for a generator.")
    validation: DataSource | None = Field(None, description="Validation data; split off train when absent.")
    test: DataSource | None = Field(None, description="Test data, evaluated once after training.")
    reader: Component(registry.readers, "auto") = Field(  # type: ignore[valid-type]
        default_factory=lambda: "auto", validate_default=True,
        description="How files are read: columns, encoding, delimiter. 'auto' picks by file extension.",
    )
    labels: list[str] | None = Field(
        None, description="The label set, in order. Inferred (sorted) from the training data when absent."
    )
    label_delimiter: str = Field(
        ",", min_length=1, description="multilabel: the separator of labels in one text field ('joy,love'); lists need none.",
    )
    validation_split: float = Field(
        0.1, ge=0.0, lt=1.0,
        description="Fraction of train held out (stratified) as validation when no validation data is given.",
    )
    unlabeled: str | None = Field(
        None, description="distill: a data file of texts without labels (read like data.train, the label column not "
        "needed) that the student learns from through the teacher's outputs.",
    )
    checks: bool = Field(
        True, description="Before training, check the data cheaply (validation/test texts also in train, labels missing "
        "from a split, heavy truncation) and log warnings; `textsift debug data` checks more.",
    )

    @model_validator(mode="after")
    def _unique_labels(self) -> "DataConfig":
        if self.labels is not None:
            if len(self.labels) < 2:
                raise ValueError(f"data.labels needs at least 2 labels, got {self.labels}")
            dupes = sorted({x for x in self.labels if self.labels.count(x) > 1})
            if dupes:
                raise ValueError(f"data.labels has duplicates: {dupes}")
        return self


class OptimizerConfig(Section):
    """A ``torch.optim.Optimizer`` named by import path; other keys are passed to it as keyword arguments."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field("torch.optim:AdamW", description="Import path of a torch.optim.Optimizer subclass.")
    lr: float = Field(1e-3, gt=0.0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0.0)

    @model_validator(mode="before")
    @classmethod
    def _numbers_in_extra_arguments(cls, data: Any) -> Any:
        # YAML 1.1 reads `eps: 1e-8` (no dot) as a string; typed fields convert it, extra arguments need this
        if isinstance(data, dict):
            from textsift.config.loader import _number

            data = {k: (_number(v) if k not in cls.model_fields else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _check_optimizer(self) -> "OptimizerConfig":
        import torch

        try:
            cls = registry.import_path(self.type)
        except RegistryError as exc:
            raise ValueError(str(exc)) from None
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ValueError(f"'{self.type}' is not a torch.optim.Optimizer subclass")
        params = inspect.signature(cls.__init__).parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for key in (self.model_extra or {}):
            if key not in params and not accepts_any:
                options = sorted(k for k in params if k not in ("self", "params"))
                from textsift.errors import did_you_mean

                raise ValueError(
                    f"{self.type} has no argument '{key}'.{did_you_mean(key, options)} Its arguments: {', '.join(options)}"
                )
        return self

    def kwargs(self) -> dict[str, Any]:
        return {"lr": self.lr, "weight_decay": self.weight_decay, **(self.model_extra or {})}


class EarlyStoppingConfig(Section):
    """Stop when the monitored metric stops improving. Strict: a metric that is never logged is an error."""

    monitor: str | None = Field(None, description="Metric to watch; defaults to trainer.main_metric.")
    patience: int = Field(3, ge=1, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts as an improvement.")
    min_epochs: int = Field(1, ge=1, description="Never stop before this many epochs.")
    smoothing: int = Field(1, ge=1, description="Compare the moving average over this many epochs.")
    max_regression: float | None = Field(
        None, gt=0.0,
        description="Regression guard: stop at once when the metric falls this far behind its best.",
    )


class TrainerConfig(Section):
    @model_validator(mode="after")
    def _positive_batch(self) -> "TrainerConfig":
        if isinstance(self.batch_size, int) and self.batch_size < 1:
            raise ValueError(f"trainer.batch_size must be >= 1 or 'auto', got {self.batch_size}")
        return self

    epochs: int = Field(10, ge=1)
    batch_size: int | Literal["auto"] = Field(
        32, description="Examples per step, or 'auto': chosen by the model from the training data (logged)."
    )
    eval_batch_size: int = Field(512, ge=1)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: Component(registry.schedulers, "constant") = Field(  # type: ignore[valid-type]
        default_factory=lambda: "constant", validate_default=True
    )
    loss: Component(registry.losses, "cross_entropy") = Field(  # type: ignore[valid-type]
        default_factory=lambda: "cross_entropy", validate_default=True
    )
    grad_clip: float | None = Field(1.0, gt=0.0, description="Clip the gradient norm to this; null: no clipping.")
    accumulate_grad_batches: int = Field(
        1, ge=1, description="Split each batch into this many micro-batches (same update, less memory)."
    )
    precision: Literal["32", "bf16", "fp16"] = Field(
        "32", description="bf16/fp16: mixed precision (autocast; fp16 with a grad scaler) on a GPU; bf16 also on a CPU "
        "with native bf16 (avx512_bf16/AMX); fp32 elsewhere."
    )
    compile: bool = Field(
        False, description="torch backend: torch.compile the network's training forward (nn.Module.compile, in place; "
        "nothing saved changes). Each new input shape compiles once (shapes vary with the batch's length until torch "
        "marks them dynamic), so it pays only on long runs of few shapes."
    )

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        """``precision: 32`` in YAML (or ``--set trainer.precision=32``) is the number 32: the setting "32"."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    main_metric: str = Field(
        "val/accuracy",
        description="The one metric for best-checkpoint selection, early stopping and tuning.",
    )
    main_metric_mode: Literal["max", "min"] = "max"
    early_stopping: EarlyStoppingConfig | None = Field(default_factory=EarlyStoppingConfig)
    restore_best: bool = Field(True, description="Load the best epoch's weights (by main_metric) at the end.")
    calibration: Literal["none", "temperature"] = Field(
        "none", description="'temperature': after training, fit temperature scaling on the validation data "
        "(saved in the model directory, used by predict; predicted labels do not change).",
    )
    bucket_by_length: bool = Field(True, description="Batch examples of similar length together.")
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:1', or 'auto'.")
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch; null: torch's default.")
    callbacks: list[Component(registry.callbacks)] = Field(default_factory=list)  # type: ignore[valid-type]
    log_every_steps: int = Field(50, ge=1)
    checkpoint_every_s: float = Field(
        60.0, ge=0.0, description="Checkpoint at an epoch's end once this many seconds have passed since the last "
        "checkpoint (0: every epoch), and always when training ends: an interruption loses at most about this much.",
    )


class ThresholdConfig(Section):
    """How probabilities become labels: thresholds tuned on validation data (multilabel; binary's positive class)."""

    tune: Literal["auto", "per_label", "global", "none"] = Field(
        "auto", description="auto: per_label for multilabel, none for single-label. Binary single-label: per_label or "
        "global tunes the positive class's threshold.",
    )
    metric: str | None = Field(
        None, description="Metric the tuning maximises (macro_f1, micro_f1, ...); default: the main metric if it is an F1, else macro_f1.",
    )
    default: float = Field(0.5, gt=0.0, lt=1.0, description="Threshold before (or without) tuning.")
    at_least_one: bool = Field(False, description="multilabel: an example with no label over its threshold gets its most probable label.")
    top_k: int | None = Field(None, ge=1, description="multilabel: keep at most this many labels per example.")
    positive_label: str | None = Field(None, description="binary: the positive class (default: the second label).")


class AugmentConfig(Section):
    """Augmented copies of the training texts for distillation (Tang et al. 2019): the teacher labels them."""

    copies: int = Field(0, ge=0, description="Augmented copies of each training text (0: none).")
    mask_prob: float = Field(0.1, ge=0.0, le=1.0, description="Each word of a copy is replaced by a mask token with this probability.")
    ngram_prob: float = Field(0.25, ge=0.0, le=1.0, description="A copy keeps only a random n-gram of 1-5 words with this probability.")
    mask_token: str = Field("[MASK]", min_length=1, description="The word that replaces a masked one.")


class DistillConfig(Section):
    """Knowledge distillation from a trained teacher model (``textsift distill TEACHER_DIR CONFIG``)."""

    teacher: str | None = Field(None, description="The teacher's model directory (the distill command's TEACHER_DIR sets it).")
    temperature: float = Field(2.0, gt=0.0, description="Softmax temperature T of the soft labels; the KL term is scaled by T^2.")
    alpha: float = Field(
        0.5, ge=0.0, le=1.0, description="Weight of the soft-label loss (KL to the teacher); 1 - alpha weighs the hard labels."
    )
    hidden_weight: float = Field(0.0, ge=0.0, description="transformer students: weight of the hidden-state MSE (TinyBERT).")
    attention_weight: float = Field(0.0, ge=0.0, description="transformer students: weight of the attention-map MSE (TinyBERT).")
    layer_map: list[int] | None = Field(
        None, description="transformer students: teacher layer (0-based) matched by each student layer; null: evenly spaced, "
        "the last on the last.",
    )
    init_from_teacher_layers: list[int] | None = Field(
        None, description="transformer students: start from the teacher's embeddings, head and these encoder layers (0-based, "
        "DistilBERT-style); the student then has len(list) layers.",
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    cache_dir: str | None = Field(
        None, description="Where the teacher's outputs are cached by content (null: $XDG_CACHE_HOME/textsift/teacher).",
    )
    teacher_runtime: Literal["torch", "onnx"] = Field(
        "torch", description="What computes the teacher's soft labels: torch, or onnx (its exported fp32 graph: faster on a CPU).",
    )


#: the model types of each backend other than torch (which has them all); the flax backend's own table is
#: ``textsift.backends.flax.networks.NETWORKS`` (a test keeps the two equal, without config importing a backend)
BACKEND_MODELS: dict[str, tuple[str, ...]] = {"flax": ("bag", "cnn", "lstm", "gru")}


class Config(Section):
    """A complete run: data, tokenizer, model and trainer."""

    task: Literal["single_label", "multilabel"] = Field(
        "single_label", description="single_label: one label per example (softmax); multilabel: a set of labels (sigmoids)."
    )
    seed: int = 0
    backend: Literal["torch", "flax"] = Field(
        "torch", description="What builds and trains the network: torch, or flax (JAX/Flax NNX; models bag, cnn, lstm "
        "and gru). The model settings are the same on both.",
    )
    imports: list[str] = Field(
        default_factory=list, description="Modules imported before validation, to register your own components."
    )
    data: DataConfig
    tokenizer: Component(registry.tokenizers, "hashed_ngrams") = Field(  # type: ignore[valid-type]
        default_factory=lambda: "hashed_ngrams", validate_default=True
    )
    model: Component(registry.models, "bag") = Field(  # type: ignore[valid-type]
        default_factory=lambda: "bag", validate_default=True
    )
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig)
    distill: DistillConfig | None = Field(None, description="Distillation from a teacher (textsift distill); null: none.")

    @model_validator(mode="before")
    @classmethod
    def _multilabel_defaults(cls, data: Any) -> Any:
        """A multilabel task trains with binary cross-entropy and selects on macro-F1 unless told otherwise."""
        if isinstance(data, dict) and data.get("task") == "multilabel":
            trainer = data.get("trainer")
            trainer = dict(trainer) if isinstance(trainer, dict) else {}
            trainer.setdefault("loss", "bce")
            trainer.setdefault("main_metric", "val/macro_f1")
            data = {**data, "trainer": trainer}
        return data

    @model_validator(mode="after")
    def _backend_has_the_model(self) -> "Config":
        models = BACKEND_MODELS.get(self.backend)
        if models is not None and self.model.type not in models:  # type: ignore[attr-defined]
            raise ValueError(
                f"backend '{self.backend}' has no '{self.model.type}' model (it has {', '.join(models)}): "  # type: ignore[attr-defined]
                f"set backend: torch for it, or choose one of those models"
            )
        return self

    @model_validator(mode="after")
    def _loss_fits_the_task(self) -> "Config":
        loss_type = self.trainer.loss.type  # type: ignore[attr-defined]
        if self.task == "multilabel" and loss_type == "cross_entropy":
            raise ValueError("trainer.loss 'cross_entropy' is a single-label loss (softmax); a multilabel task needs 'bce' (the default)")
        if self.task == "single_label" and loss_type == "bce":
            raise ValueError("trainer.loss 'bce' is for multilabel tasks; use 'cross_entropy', or set task: multilabel")
        return self

    @model_validator(mode="after")
    def _validation_metrics_need_validation_data(self) -> "Config":
        has_validation = self.data.validation is not None or self.data.validation_split > 0
        monitored = [self.trainer.main_metric]
        if self.trainer.early_stopping is not None:
            monitored.append(self.trainer.early_stopping.monitor or self.trainer.main_metric)
        if not has_validation and any(m.startswith("val/") for m in monitored):
            raise ValueError(
                f"trainer.main_metric '{self.trainer.main_metric}' needs validation data, but there is no validation data: "
                "set data.validation or data.validation_split > 0, or monitor a train/ metric "
                "(trainer.main_metric: train/loss, main_metric_mode: min) and set trainer.early_stopping: null"
            )
        if self.trainer.calibration != "none" and not has_validation:
            raise ValueError(
                f"trainer.calibration '{self.trainer.calibration}' is fitted on validation data, but there is none: "
                "set data.validation or data.validation_split > 0, or set trainer.calibration: none"
            )
        return self


__all__ = ["AugmentConfig", "Config", "DataConfig", "DistillConfig", "EarlyStoppingConfig", "OptimizerConfig", "ThresholdConfig", "TrainerConfig"]
