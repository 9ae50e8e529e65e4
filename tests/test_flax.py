"""The flax backend: torch-exact losses and optimizers, bounded compilation, data parallelism, resume after kill -9,
the runtime behind the Predictor, and one-line errors. (The model contract over every flax model is in
test_models_contract.py.)"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx
import numpy as np
import pytest
import torch
import yaml

import textsift
from textsift.backends.flax.optim import build_loss, build_optimizer
from textsift.backends.flax.shapes import bucket_count, bucket_width
from textsift.config import resolve
from textsift.config.schema import OptimizerConfig
from textsift.errors import ConfigError, ModelDirError
from textsift.training.callbacks import Callback
from textsift.training.losses import BinaryCrossEntropySpec, CrossEntropySpec

from conftest import TINY, assert_only_safe_files, tiny_config, write_jsonl


@pytest.mark.parametrize("smoothing,weights", [(0.0, "none"), (0.1, "balanced"), (0.2, "effective_number")])
def test_cross_entropy_equals_torchs(smoothing, weights):
    rng = np.random.default_rng(0)
    logits, labels, counts = rng.normal(size=(9, 4)).astype(np.float32), rng.integers(0, 4, 9), np.array([30, 5, 9, 1])
    spec = CrossEntropySpec(label_smoothing=smoothing, class_weights=weights)
    expected = float(spec.build(counts)(torch.from_numpy(logits), torch.from_numpy(labels)))
    got = build_loss(spec, counts, 45)(jnp.asarray(logits), jnp.asarray(labels), jnp.ones(9))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # filler rows (weight 0) change nothing, even with non-finite logits
    padded = np.concatenate([logits, np.full((3, 4), np.nan, np.float32)])
    got = build_loss(spec, counts, 45)(jnp.asarray(padded), jnp.asarray(np.r_[labels, 0, 0, 0]), jnp.asarray(np.r_[np.ones(9), np.zeros(3)]))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_bce_with_balanced_positive_weights_equals_torchs():
    rng = np.random.default_rng(1)
    logits, y = rng.normal(size=(6, 3)).astype(np.float32), (rng.random((6, 3)) > 0.6).astype(np.float32)
    spec = BinaryCrossEntropySpec(pos_weight="balanced", max_pos_weight=3.0)
    counts = y.sum(axis=0)
    expected = float(spec.build(counts, 6)(torch.from_numpy(logits), torch.from_numpy(y)))
    assert float(build_loss(spec, counts, 6)(jnp.asarray(logits), jnp.asarray(y), jnp.ones(6))) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("settings", [
    {"type": "torch.optim:AdamW", "lr": 0.01, "weight_decay": 0.1},
    {"type": "torch.optim:Adam", "lr": 0.01, "weight_decay": 0.1, "eps": 1e-6},
    {"type": "torch.optim:SGD", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
])
def test_optimizers_update_as_torchs(settings):
    """Three steps of the optax transformation equal torch's optimizer on the same gradients (biases undecayed)."""
    rng = np.random.default_rng(2)
    w0, b0 = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    grads = [(rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)) for _ in range(3)]
    spec = OptimizerConfig(**settings)
    tw, tb = torch.nn.Parameter(torch.from_numpy(w0.copy())), torch.nn.Parameter(torch.from_numpy(b0.copy()))
    cls = {"AdamW": torch.optim.AdamW, "Adam": torch.optim.Adam, "SGD": torch.optim.SGD}[spec.type.split(":")[1]]
    kwargs = spec.kwargs()
    wd = kwargs.pop("weight_decay")
    opt = cls([{"params": [tw], "weight_decay": wd}, {"params": [tb], "weight_decay": 0.0}], **kwargs)
    params = {"w": jnp.asarray(w0), "b": jnp.asarray(b0)}
    tx = build_optimizer(spec, None, lambda p: {"w": "decay", "b": "no_decay"})
    state = tx.init(params)
    for gw, gb in grads:
        tw.grad, tb.grad = torch.from_numpy(gw), torch.from_numpy(gb)
        opt.step()
        updates, state = tx.update({"w": jnp.asarray(gw), "b": jnp.asarray(gb)}, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    np.testing.assert_allclose(np.asarray(params["w"]), tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(params["b"]), tb.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_sparse_adamw_leaves_unused_rows_alone():
    spec = OptimizerConfig(type="textsift.training.optim:SparseAdamW", lr=0.1, sparse_eps=0.2)
    table = jnp.ones((4, 2))
    tx = build_optimizer(spec, None, lambda p: {"t": "sparse"})
    state = tx.init({"t": table})
    grad = jnp.zeros((4, 2)).at[1].set(1.0)
    for _ in range(2):
        updates, state = tx.update({"t": grad}, state, {"t": table})
    moved = np.asarray(updates["t"])
    assert np.all(moved[[0, 2, 3]] == 0) and np.all(moved[1] < 0)  # only the used row moves, against its gradient


def test_unsupported_optimizer_and_options_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"'torch.optim:RMSprop' has no flax equivalent.*set backend: torch"):
        build_optimizer(OptimizerConfig(type="torch.optim:RMSprop"), None, lambda p: p)
    with pytest.raises(ConfigError, match=r"does not take amsgrad for torch.optim:AdamW"):
        build_optimizer(OptimizerConfig(type="torch.optim:AdamW", amsgrad=True), None, lambda p: p)


def test_buckets_are_powers_of_two_from_16():
    assert [bucket_width(n) for n in (1, 16, 17, 100, 128, 129)] == [16, 16, 32, 128, 128, 256]


def _varied(tmp_path: Path) -> Path:
    """40 texts of 1 to 70 words: widths in the 16, 32, 64 and 128 buckets."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        n = int(rng.integers(1, 71))
        label = "pos" if i % 2 else "neg"
        rows.append({"text": " ".join([label] + [f"w{j % 7}" for j in range(n - 1)]), "label": label})
    return write_jsonl(tmp_path / "varied.jsonl", rows)


def test_training_compiles_once_per_width_bucket(tmp_path, caplog):
    """Padded models (cnn here) compile their step once per width bucket, in the first epoch only."""
    data = _varied(tmp_path)
    raw = tiny_config(data, "cnn", trainer__epochs=3, trainer__batch_size=8, backend="flax")
    raw["model"] = {"type": "cnn", "embed_dim": 8, "channels": 4, "head": {"hidden_dims": [8], "dropout": 0.2}}
    raw["tokenizer"] = {"type": "words", "max_length": 100}
    compiles_per_epoch, shapes = _count_step_compiles(raw, caplog)
    widths = {shape[1] for shape in result_trainer_shapes(caplog)}
    assert widths <= {16, 32, 64, 128} and len(widths) >= 3  # several buckets were trained on
    # every step shape compiled in the first epoch (each batch width met then), none in the next two
    assert compiles_per_epoch[0] == len(widths) == len(shapes) and compiles_per_epoch == [compiles_per_epoch[0]] * 3


def test_the_bag_compiles_once_per_flat_size_bucket(tmp_path, caplog, monkeypatch):
    """The bag's flat batches (entries and distinct rows, each bucketed) compile the step once per pair of buckets,
    in the first epoch only, however many batches follow."""
    from textsift.backends.flax import shapes

    monkeypatch.setattr(shapes, "FLAT_MIN", 16)  # small buckets, so that these small batches meet several
    data = _varied(tmp_path)
    raw = tiny_config(data, "bag", trainer__epochs=3, trainer__batch_size=8, backend="flax")
    raw["model"] = {"type": "bag", "embed_dim": 8, "head": {"hidden_dims": [8], "dropout": 0.2}}
    raw["tokenizer"] = {"type": "hashed_ngrams", "word_ngrams": 3, "max_length": 300}
    compiles_per_epoch, shapes = _count_step_compiles(raw, caplog)
    assert all(kind == "flat" and bucket_count(t) == t and bucket_count(u) == u for kind, t, u in shapes)
    assert len({t for _, t, _ in shapes}) >= 2  # batches of several sizes
    assert compiles_per_epoch[0] == len(shapes) and compiles_per_epoch == [compiles_per_epoch[0]] * 3


def test_flat_sizes_grow_by_a_quarter_octave_from_4096():
    assert [bucket_count(n) for n in (0, 1, 4096, 4097, 9000, 70_000, 140_000)] == [4096, 4096, 4096, 4928, 9792, 77952, 155904]
    sizes = sorted({bucket_count(n) for n in range(1, 1_000_000, 101)})
    assert all(bucket_count(s) == s for s in sizes)  # a size is its own bucket
    assert max(b / a for a, b in zip(sizes, sizes[1:])) < 1.21  # so a batch is at most a sixth filler
    assert len(sizes) == 33  # few shapes: 4 an octave from 4,096 to 1,048,576


def _count_step_compiles(raw: dict, caplog) -> tuple[list[int], set]:
    """Compilations of the training step counted at the end of each epoch, and the step shapes the trainer ran."""
    caplog.set_level(logging.WARNING, logger="jax._src.interpreters.pxla")
    compiles_per_epoch: list[int] = []
    shapes: set = set()

    class Count(Callback):
        def on_epoch_end(self, trainer, metrics):
            compiles_per_epoch.append(sum("Compiling jit(step)" in r.getMessage() for r in caplog.records))
            if not shapes:
                shapes.update(trainer.shapes_compiled)  # the first epoch's
            assert trainer.shapes_compiled == shapes  # later epochs meet no new shape

    with jax.log_compiles(True):
        result = textsift.train(resolve(raw), callbacks=[Count()])
    assert result.state.global_step == 15  # 40 texts in batches of 8, 3 epochs
    return compiles_per_epoch, shapes


def result_trainer_shapes(caplog) -> list[tuple[int, int]]:
    """The (rows, width) of the ids argument of each compiled training step, read from jax's compile log."""
    import re

    shapes = []
    for record in caplog.records:
        message = record.getMessage()
        if "Compiling jit(step)" in message:
            found = re.findall(r"int32\[(\d+),(\d+)\]", message)
            shapes.append(tuple(int(x) for x in found[0]))
    return shapes


DP_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, sys.argv[2])
    from textsift.backends.flax.networks import build_network
    from textsift.backends.flax.optim import build_loss
    from textsift.backends.flax.trainer import FlaxTrainer
    from textsift.batching import EncodedDataset
    from textsift.config import resolve
    from textsift.training.callbacks import Callback
    from conftest import tiny_config

    assert len(jax.devices()) == 2, jax.devices()
    config = resolve(tiny_config(sys.argv[1], "bag", trainer__epochs=2, trainer__batch_size=6, backend="flax",
                                 model__embed_dim=8, model__head={"hidden_dims": [8], "dropout": 0.3}))
    from textsift.data.loading import load_splits
    splits = load_splits(config)
    tokenizer = config.tokenizer.build()
    train = EncodedDataset(tokenizer.fit_encode(splits.train.examples), splits.labels.encode(splits.train))
    out = {}
    for name, devices in (("one", jax.devices()[:1]), ("two", jax.devices())):
        losses = []
        class Log(Callback):
            def on_batch_end(self, trainer, loss):
                losses.append(loss)
        net = build_network(config.model, vocab_size=tokenizer.vocab_size, num_labels=2, seed=0)
        trainer = FlaxTrainer(config.trainer, seed=0, model_spec=config.model, label_names=splits.labels.names,
                              callbacks=[Log()], devices=devices)
        trainer.fit(net, train, train, loss_fn=build_loss(config.trainer.loss, np.array([8, 8]), 16))
        out[name + "_val"] = trainer.state.history[-1]["val/loss"]
        out[name] = {"losses": losses, "sharding": str(jax.tree.leaves(trainer.params)[0].sharding),
                     "devices": trainer.parallel.size}
    print(json.dumps(out))
""")


def test_data_parallel_on_two_devices_gives_one_devices_losses(tiny_jsonl, tmp_path):
    script = tmp_path / "dp.py"
    script.write_text(DP_SCRIPT)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(script), str(tiny_jsonl), str(Path(__file__).parent)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["one"]["devices"] == 1 and out["two"]["devices"] == 2
    assert "NamedSharding" in out["two"]["sharding"]  # replicated over the data mesh
    one, two = np.array(out["one"]["losses"]), np.array(out["two"]["losses"])
    assert len(one) == len(two) == 6  # 16 examples in batches of 6 (the last padded), 2 epochs
    np.testing.assert_allclose(two, one, atol=1e-5, rtol=0)
    assert out["two_val"] == pytest.approx(out["one_val"], abs=1e-5)  # evaluation over the mesh too
    assert len(set(np.round(one, 6))) == len(one)  # it trained: every step's loss differs


KILLER = textwrap.dedent("""
    import os, signal
    from typing import Any, Literal
    from textsift.training.callbacks import Callback, CallbackSpec

    class KillAt(CallbackSpec):
        type: Literal["flax_kill:KillAt"] = "flax_kill:KillAt"

        def build(self) -> Callback:
            class _Kill(Callback):
                def on_batch_end(self, trainer: Any, loss: float) -> None:
                    if str(trainer.state.global_step) == os.environ.get("TEXTSIFT_TEST_KILL_AT"):
                        os.kill(os.getpid(), signal.SIGKILL)
            return _Kill()
""")


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    (tmp_path / "flax_kill.py").write_text(KILLER)
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = {
        "seed": 3, "backend": "flax",
        "data": {"train": {"type": "sort_detection", "size": 300, "seed": 1}, "test": {"type": "sort_detection", "size": 100, "seed": 2}},
        "model": {"type": "bag", "embed_dim": 16, "head": {"hidden_dims": [16], "dropout": 0.3}},  # dropout: keys matter
        "tokenizer": {"type": "hashed_ngrams", "word_ngrams": 3},
        "trainer": {"epochs": 3, "batch_size": 16, "early_stopping": None, "log_every_steps": 1,
                    "callbacks": [{"type": "flax_kill:KillAt"}]},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    full = textsift.train(resolve(raw), tmp_path / "full")  # in this process: the killer's variable is not set
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "TEXTSIFT_TEST_KILL_AT": "25"}
    cmd = [sys.executable, "-m", "textsift", "-q", "train", str(config), "--output", str(tmp_path / "killed"), "--checkpoint-every", "4"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (tmp_path / "killed" / "model").exists()
    env.pop("TEXTSIFT_TEST_KILL_AT")
    proc = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Resumed from" in (tmp_path / "killed" / "train.log").read_text()
    assert "epoch 2, step 7 of the epoch" in (tmp_path / "killed" / "train.log").read_text()  # step 24: 17 steps an epoch
    resumed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert resumed == full.metrics
    texts = ["a b c", "c b a", "b a c"]
    np.testing.assert_array_equal(textsift.load(tmp_path / "killed").predict(texts).probabilities,
                                  full.predictor.predict(texts).probabilities)


@pytest.fixture(scope="module")
def flax_run(tmp_path_factory) -> Path:
    """A flax bag model trained on the tiny data: its run directory (tests copy it before changing it)."""
    tmp = tmp_path_factory.mktemp("flax_run")
    data = write_jsonl(tmp / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])
    textsift.train(resolve(tiny_config(data, "bag", trainer__epochs=3, backend="flax")), tmp / "run")
    return tmp / "run"


def test_flax_model_directory_runs_on_flax_and_torch_refuses_it(flax_run, tmp_path, tiny_jsonl):
    model_dir = flax_run / "model"
    predictor = textsift.load(model_dir)
    assert predictor.runtime.name == "flax" and predictor.runtime.describe()["backend"] == "flax"
    assert yaml.safe_load((model_dir / "config.yaml").read_text())["backend"] == "flax"
    from textsift.cli.inspect_cmd import describe

    info = describe(model_dir)  # inspect counts the flax network's parameters and lists only the flax runtime
    assert set(info["parameters"]["per_module"]) == {"embedding", "head"} and info["parameters"]["total"] > 0
    assert info["runtimes"]["auto"] == "flax" and info["runtimes"]["available"] == ["flax"]
    with pytest.raises(ModelDirError, match=r"holds flax weights, which runtime 'torch' cannot run: choose --runtime flax"):
        textsift.load(model_dir, runtime="torch")
    # torch's directories are unchanged: auto still runs them on torch
    textsift.train(resolve(tiny_config(tiny_jsonl, "bag", trainer__epochs=1)), tmp_path / "torch_run")
    assert textsift.load(tmp_path / "torch_run").runtime.name == "torch"
    with pytest.raises(ModelDirError, match=r"holds pt weights, which runtime 'flax' cannot run: choose --runtime torch"):
        textsift.load(tmp_path / "torch_run", runtime="flax")


FLAX_EXPORT = {  # small networks of every flax model type; words tokenizers cut at 64 ids (the parity batches' longest)
    "bag": {"embed_dim": 8, "head": {"hidden_dims": [6]}},
    "cnn": {"embed_dim": 8, "channels": 6, "kernel_size": 7, "stride": 3},
    "lstm": {"embed_dim": 8, "hidden_size": 5, "layers": 2, "pooling": "max"},
    "gru": {"embed_dim": 8, "hidden_size": 5, "pooling": "last"},
}


@pytest.mark.parametrize("name", [*FLAX_EXPORT, "lstm-multilabel"])
def test_a_flax_model_exports_to_onnx_with_the_flax_networks_function(name, tmp_path):
    """export goes through the torch network of the spec holding the flax weights: the ONNX graphs then predict what
    the flax runtime predicts (fp32 within 1e-4, same labels, every batch size), int8 too, and auto prefers them."""
    pytest.importorskip("onnxruntime")
    from textsift.inference.export import export_model_dir

    model_type, _, task = name.partition("-")
    if task:
        rows = [{"text": t, "label": [l] + (["extra"] if i % 3 == 0 else [])} for i, (t, l) in enumerate(TINY)]
    else:
        rows = [{"text": t, "label": l} for t, l in TINY]
    data = write_jsonl(tmp_path / "tiny.jsonl", rows)
    raw = tiny_config(data, model_type, trainer__epochs=2, backend="flax")
    raw["model"] = {"type": model_type, **FLAX_EXPORT[model_type]}
    if task:
        raw["task"] = "multilabel"
    if model_type != "bag":
        raw["tokenizer"] = {"type": "words", "max_length": 64}
    model_dir = textsift.train(resolve(raw), tmp_path / "run", report=False).model_dir
    manifest = export_model_dir(model_dir, quantize="int8")
    assert manifest["source"]["backend"] == "flax" and manifest["files"]["model.onnx"]["parity_max_probability_diff"] <= 1e-4
    assert manifest["flax_parity_max_probability_diff"] <= 1e-4
    assert_only_safe_files(model_dir)
    texts = [t for t, _ in TINY] + ["an unseen text", " ".join(t for t, _ in TINY) * 4, "zzz"]
    flax_predictor = textsift.load(model_dir, runtime="flax")
    onnx_predictor = textsift.load(model_dir, runtime="onnx")
    assert textsift.load(model_dir).runtime.name == "onnx-int8"  # auto: the exported graph, as for a torch model
    for batch_size in (1, 4, 16):
        expected = flax_predictor.predict(texts, batch_size=batch_size)
        got = onnx_predictor.predict(texts, batch_size=batch_size)
        np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-4, err_msg=f"{name}, batch {batch_size}")
        assert got.labels == expected.labels
    int8 = textsift.load(model_dir, runtime="onnx-int8").predict(texts).probabilities
    assert int8.shape == expected.probabilities.shape and np.abs(int8 - expected.probabilities).max() < 0.1


def test_a_flax_export_whose_torch_network_differs_writes_nothing(flax_run, tmp_path, monkeypatch):
    """The conversion is checked before anything is traced: weights that do not give the flax network's function
    (here: the head's bias dropped) stop the export with an error, and the directory keeps no graph."""
    pytest.importorskip("onnxruntime")
    from textsift.backends.flax import weights as wio
    from textsift.inference.export import export_model_dir

    model_dir = tmp_path / "model"
    shutil.copytree(flax_run / "model", model_dir)
    real = wio.to_torch

    def wrong(*args, **kwargs):
        out = real(*args, **kwargs)
        return {k: (v * 0 + 1.0 if k.endswith("bias") and k.startswith("head") else v) for k, v in out.items()}

    monkeypatch.setattr(wio, "to_torch", wrong)
    with pytest.raises(ModelDirError, match=r"does not compute the flax network's function .*nothing is exported"):
        export_model_dir(model_dir)
    assert not (model_dir / "model.onnx").exists() and not (model_dir / "onnx.json").exists()
    monkeypatch.setattr(wio, "to_torch", real)
    arrays, meta = wio.load_file(model_dir / "model.safetensors")
    wio.save_file(model_dir / "model.safetensors", {**arrays, "stray/kernel": np.zeros(3, np.float32)}, meta)
    with pytest.raises(ModelDirError, match=r"stray/kernel have no place in the torch network of model.type 'bag'"):
        export_model_dir(model_dir)


def test_flax_evaluate_and_predict_import_no_torch(flax_run, tiny_jsonl):
    """The CLI's evaluate, and prediction through textsift.inference, run the flax runtime without importing torch."""
    code = ("import sys, textsift.inference as inf\n"
            f"p = inf.load({str(flax_run / 'model')!r})\n"
            "print(p.runtime.name, p.predict(['happy film']).labels[0])\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[0] == "flax" and proc.stdout.split()[1] in ("pos", "neg")
    out = subprocess.run([sys.executable, "-m", "textsift", "evaluate", str(flax_run / "model"), str(tiny_jsonl)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "accuracy" in out.stdout


def test_a_damaged_or_mismatched_flax_model_directory_names_the_file(flax_run, tmp_path):
    import shutil

    model_dir = Path(shutil.copytree(flax_run / "model", tmp_path / "model"))
    labels = json.loads((model_dir / "labels.json").read_text())["labels"]
    (model_dir / "labels.json").write_text(json.dumps({"labels": labels + ["extra"]}))
    with pytest.raises(ModelDirError, match=r"tensor 'head/layers/0/bias' has shape \(2,\), the model expects \(3,\)"):
        textsift.load(model_dir)
    (model_dir / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelDirError, match=r"model.safetensors: cannot read the tensors"):
        textsift.load(model_dir, runtime="flax")


def _torch_to_flax(name: str, state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    from textsift.backends.flax.weights import from_torch

    return from_torch(name, state)


@pytest.mark.parametrize("name,settings", [
    ("bag", {"embed_dim": 6, "head": {"hidden_dims": [5]}}),
    ("bag", {"embed_dim": 6, "pooling": "max", "sparse": False}),  # (torch: max pooling has no sparse mode)
    ("cnn", {"embed_dim": 6, "channels": 5, "kernel_size": 7, "stride": 3, "head": {"hidden_dims": [4]}}),
    ("cnn", {"embed_dim": 6, "channels": 5, "kernel_size": 4, "activation": "gelu"}),
    ("cnn", {"embed_dim": 6, "channels": 5, "kernel_size": 7, "stride": 3, "embed_init": "fan_in", "embed_dropout": 0.5}),
    ("lstm", {"embed_dim": 6, "hidden_size": 5, "layers": 2, "pooling": "max"}),
    ("lstm", {"embed_dim": 6, "hidden_size": 5, "bidirectional": False, "pooling": "last"}),
    ("gru", {"embed_dim": 6, "hidden_size": 5, "layers": 2, "pooling": "last"}),
    ("gru", {"embed_dim": 6, "hidden_size": 5, "pooling": "mean"}),
])
def test_the_same_spec_computes_the_same_function_on_both_backends(name, settings, tiny_jsonl):
    """torch's weights copied into the flax network give torch's logits: the backends build one network from a spec."""
    from flax import nnx

    from textsift.backends.flax import weights as wio
    from textsift.backends.flax.networks import build_network
    from textsift.backends.flax.runtime import FlaxRuntime

    spec = resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": name, **settings}}).model
    torch.manual_seed(0)
    net = spec.build(vocab_size=40, num_labels=3).eval()
    flax_net = build_network(spec, vocab_size=40, num_labels=3, seed=0)
    arrays = _torch_to_flax(name, {k: v.detach() for k, v in net.state_dict().items()})
    nnx.update(flax_net, wio.unflatten(nnx.state(flax_net, nnx.Param), arrays, source="torch"))
    texts = [[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [8, 9], [10], [20, 21, 22, 23, 24]]
    padded = np.zeros((4, 11), np.int64)
    for i, t in enumerate(texts):
        padded[i, : len(t)] = t
    lengths = np.array([len(t) for t in texts])
    if name == "bag":
        batch = {"ids": torch.tensor(sum(texts, [])), "offsets": torch.tensor(np.r_[0, np.cumsum(lengths)[:-1]])}
    else:
        batch = {"ids": torch.from_numpy(padded), "lengths": torch.from_numpy(lengths)}
    with torch.no_grad():
        expected = net(batch).numpy()
    got = FlaxRuntime(flax_net).logits({"ids": padded, "lengths": lengths})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("extra", [{"sparse_eps": 0.2}, {"sparse_lr": 0.5}])
def test_the_bags_gathered_rows_update_equals_the_whole_tables(tiny_jsonl, extra):
    """SparseAdamW on the rows a batch uses (gathered at a fixed size) is the lazy update over the whole table."""
    from textsift.backends.flax.networks import build_network
    from textsift.backends.flax.optim import build_loss
    from textsift.backends.flax.trainer import FlaxTrainer
    from textsift.batching import EncodedDataset
    from textsift.data.loading import load_splits

    config = resolve(tiny_config(tiny_jsonl, "bag", trainer__epochs=2, trainer__batch_size=5, trainer__grad_clip=0.5,
                                 backend="flax", trainer__optimizer={"type": "textsift.training.optim:SparseAdamW", "lr": 0.05, **extra},
                                 model__head={"hidden_dims": [16], "dropout": 0.2}, model__feature_dropout=0.1))
    splits = load_splits(config)
    tokenizer = config.tokenizer.build()
    train = EncodedDataset(tokenizer.fit_encode(splits.train.examples), splits.labels.encode(splits.train))
    out = {}
    for gather in (True, False):
        net = build_network(config.model, vocab_size=tokenizer.vocab_size, num_labels=2, seed=0)
        trainer = FlaxTrainer(config.trainer, seed=0, model_spec=config.model, label_names=["neg", "pos"], gather_rows=gather)
        trainer.fit(net, train, train, loss_fn=build_loss(config.trainer.loss, np.array([8, 8]), 16))
        out[gather] = (trainer.state.history, np.asarray(jax.tree.leaves(trainer.params)[0]))
    assert out[True][0][-1]["train/loss"] == pytest.approx(out[False][0][-1]["train/loss"], abs=1e-6)
    np.testing.assert_allclose(out[True][1], out[False][1], atol=1e-6)
    assert not np.allclose(out[True][1][1:], build_network(config.model, vocab_size=tokenizer.vocab_size, num_labels=2,
                                                           seed=0).embedding[...][1:])  # the table did train


@pytest.mark.parametrize("pooling", ["mean", "sum", "max"])
def test_the_bags_flat_batch_gives_the_padded_batchs_logits(tiny_jsonl, pooling):
    """The training step's flat input (entries sorted by table row, the batch's distinct rows gathered or the whole
    table indexed) gives the logits of the padded input that evaluation and the runtime use: every text, empty ones
    and batch fillers included."""
    from textsift.backends.flax.networks import build_network
    from textsift.backends.flax.shapes import NO_ROW, flat_bag_batch, padded_batch
    from textsift.text.base import Ragged

    spec = resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": "bag", "embed_dim": 6, "pooling": pooling,
                                                                  "head": {"hidden_dims": [5]}}}).model
    net = build_network(spec, vocab_size=50, num_labels=3, seed=0)
    ids = Ragged.from_rows([[3, 7, 7, 12], [49], [], [5, 3, 9, 9, 9, 1, 2, 40], [12, 3]])
    index = np.array([3, 0, 2, 4, 1])
    padded = padded_batch(ids, index, 8)
    expected = np.asarray(net({"ids": jnp.asarray(padded["ids"]), "lengths": jnp.asarray(padded["lengths"])}))
    whole = flat_bag_batch(ids, index, 8, gather_rows=False)
    assert np.all(np.diff(whole["feat"]) >= 0) and len(whole["feat"]) == 4096
    n = int((whole["count"] > 0).sum())  # 15 ids, 12 entries: 7 twice in one text, 9 three times in another
    assert (n, whole["count"].sum()) == (12, 15) and whole["count"][:n][whole["feat"][:n] == 9].tolist() == [3.0]
    got, keep = net.flat_logits({k: jnp.asarray(v) for k, v in whole.items()})
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(keep), whole["count"])
    local = flat_bag_batch(ids, index, 8)
    distinct = [1, 2, 3, 5, 7, 9, 12, 40, 49]
    assert list(local["rows"][:9]) == distinct and np.all(local["rows"][9:] == NO_ROW)
    table = net.embedding[...]
    net.embedding = nnx.Param(table.at[jnp.asarray(local["rows"])].get(mode="fill", fill_value=0.0))
    got, _ = net.flat_logits({k: jnp.asarray(v) for k, v in local.items()})
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


def test_the_cnns_fan_in_embeddings_and_their_dropout_on_both_backends(tiny_jsonl):
    """embed_init fan_in: N(0, 1/embed_dim) on both backends (padding row zero); embed_dropout drops embeddings in
    training only."""
    from textsift.backends.flax.networks import build_network

    spec = resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": "cnn", "embed_dim": 64, "channels": 5,
                                                                  "dropout": 0.0, "embed_init": "fan_in", "embed_dropout": 0.5}}).model
    torch.manual_seed(0)
    tables = {"torch": spec.build(vocab_size=2000, num_labels=3).embedding.weight.detach().numpy(),
              "flax": np.asarray(build_network(spec, vocab_size=2000, num_labels=3, seed=0).embedding.embedding[...])}
    for table in tables.values():
        assert np.all(table[0] == 0) and table[1:].std() == pytest.approx(64 ** -0.5, rel=0.02)
    net = build_network(spec, vocab_size=2000, num_labels=3, seed=0)
    batch = {"ids": jnp.asarray(np.arange(1, 41).reshape(2, 20)), "lengths": jnp.asarray([20, 13])}
    evaluated = np.asarray(net(batch))
    np.testing.assert_array_equal(np.asarray(net(batch)), evaluated)
    trained = [np.asarray(net(batch, jax.random.key(k))) for k in range(2)]
    assert not np.allclose(trained[0], evaluated) and not np.allclose(trained[0], trained[1])


@pytest.mark.parametrize("name,settings", [
    ("lstm", {"embed_dim": 6, "hidden_size": 5, "layers": 2, "pooling": "max"}),
    ("lstm", {"embed_dim": 6, "hidden_size": 5, "bidirectional": False, "pooling": "last"}),
    ("gru", {"embed_dim": 6, "hidden_size": 5, "layers": 2, "pooling": "last"}),
    ("gru", {"embed_dim": 6, "hidden_size": 5, "pooling": "mean"}),
])
def test_the_recurrences_hand_written_gradients_equal_torchs(name, settings, tiny_jsonl):
    """The LSTM and GRU scans have their own backward pass (jax.custom_vjp): from the same weights, every parameter's
    gradient equals torch autograd's, texts of different lengths (padding past each end) included."""
    from flax import nnx

    from textsift.backends.flax import weights as wio
    from textsift.backends.flax.networks import build_network

    spec = resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": name, "dropout": 0.0, **settings}}).model
    torch.manual_seed(0)
    net = spec.build(vocab_size=40, num_labels=3)
    flax_net = build_network(spec, vocab_size=40, num_labels=3, seed=0)
    nnx.update(flax_net, wio.unflatten(nnx.state(flax_net, nnx.Param), _torch_to_flax(name, {k: v.detach() for k, v in net.state_dict().items()}), source="torch"))
    texts = [[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [8, 9], [10], [20, 21, 22, 23, 24]]
    padded = np.zeros((4, 16), np.int32)
    for i, t in enumerate(texts):
        padded[i, : len(t)] = t
    lengths = np.array([len(t) for t in texts], np.int32)
    mix = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)

    loss = (net({"ids": torch.from_numpy(padded).long(), "lengths": torch.from_numpy(lengths).long()}) * torch.from_numpy(mix)).sum()
    loss.backward()
    expected = _torch_to_flax(name, {k: p.grad for k, p in net.named_parameters()})

    graphdef, params = nnx.split(flax_net, nnx.Param)

    def flax_loss(p):
        return (nnx.merge(graphdef, p)({"ids": jnp.asarray(padded), "lengths": jnp.asarray(lengths)}) * mix).sum()

    grads = wio.flatten(jax.grad(flax_loss)(params), "")
    assert set(expected) <= set(grads)
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(grads[key]), value, rtol=1e-4, atol=1e-5, err_msg=key)
