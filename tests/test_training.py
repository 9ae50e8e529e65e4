from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import textsift
from textsift.backends.torch.optim import SparseAdamW
from textsift.config import EarlyStoppingConfig, resolve
from textsift.errors import CheckpointError, ConfigError
from textsift.training.callbacks import EarlyStopping, TrainerState
from textsift.training.losses import class_weights
from textsift.training.schedulers import ConstantSchedule, CosineSchedule, LinearSchedule

from conftest import TINY, assert_only_safe_files, tiny_config, write_jsonl

PLUGINS = Path(__file__).parent / "plugins"


class _FakeTrainer:
    def __init__(self) -> None:
        self.state = TrainerState()


def _run_early_stopping(values, **kwargs):
    cb = EarlyStopping(EarlyStoppingConfig(**kwargs), "val/accuracy", "max")
    trainer = _FakeTrainer()
    for v in values:
        trainer.state.epoch += 1
        cb.on_epoch_end(trainer, {"val/accuracy": v})
        if trainer.state.should_stop:
            return trainer.state.epoch, trainer.state.stop_reason
    return None, ""


def test_early_stopping_patience_min_delta_min_epochs():
    assert _run_early_stopping([0.5, 0.6, 0.6, 0.6], patience=2)[0] == 4
    assert _run_early_stopping([0.5, 0.6, 0.6005, 0.601], patience=2, min_delta=0.01)[0] == 4
    assert _run_early_stopping([0.5, 0.4, 0.4, 0.4, 0.4], patience=1, min_epochs=4)[0] == 4
    assert _run_early_stopping([0.5, 0.6, 0.7, 0.8], patience=1)[0] is None


def test_early_stopping_smoothing_and_regression_guard():
    # a single noisy dip does not stop a smoothed monitor
    assert _run_early_stopping([0.5, 0.6, 0.55, 0.7, 0.72], patience=1, smoothing=2)[0] is None
    epoch, reason = _run_early_stopping([0.8, 0.81, 0.5], patience=5, max_regression=0.2)
    assert epoch == 3 and "fell more than 0.2 behind" in reason


def test_early_stopping_is_strict_about_missing_metrics():
    cb = EarlyStopping(EarlyStoppingConfig(monitor="val/f1"), "val/accuracy", "max")
    with pytest.raises(ConfigError, match=r"metric 'val/f1' was not logged. Available: val/accuracy, val/macro_f1"):
        cb.on_epoch_end(_FakeTrainer(), {"val/accuracy": 1.0, "val/macro_f1": 1.0})


def test_main_metric_missing_is_an_error_listing_available(tiny_jsonl):
    raw = tiny_config(tiny_jsonl, trainer__main_metric="val/acc", trainer__epochs=1)
    with pytest.raises(ConfigError, match=r"metric 'val/acc' was not logged. Available: .*val/accuracy"):
        textsift.train(resolve(raw))


def test_early_stopping_stops_training_and_restores_best(tiny_jsonl):
    raw = tiny_config(tiny_jsonl, trainer__epochs=50, trainer__early_stopping={"patience": 2, "monitor": "val/loss"},
                      trainer__main_metric="val/loss", trainer__main_metric_mode="min")
    raw["trainer"]["early_stopping"]["min_delta"] = 0.5  # nothing improves by 0.5 after the first epoch
    result = textsift.train(resolve(raw))
    assert result.state.epoch == 3 and "early stopping" in result.state.stop_reason


def test_batch_size_auto_lets_the_model_choose_from_the_data(tmp_path, caplog):
    import logging

    from textsift.backends.torch.networks.bag import BagSpec

    rows = [{"text": f"{t} {i}", "label": l} for i in range(10) for t, l in TINY]  # 160 examples, 144 to train on
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    raw = {"data": {"train": str(data)}, "model": {"type": "cnn"}, "trainer": {"epochs": 1, "batch_size": "auto"}}
    with caplog.at_level(logging.INFO, logger="textsift"):
        result = textsift.train(resolve(raw), tmp_path / "run")
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trainer.batch_size auto:")]
    assert len(chosen) == 1 and chosen[0].startswith("trainer.batch_size auto: 32 (144 examples,")  # logged
    assert result.state.steps_per_epoch == 5  # the batches it chose: ceil(144 / 32)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["trainer"]["batch_size"] == "auto"  # the config says what was asked; the log, what it meant
    # the bag model: about 120 steps an epoch, a power of two in [64, 512], larger for long texts
    bag = BagSpec()
    assert [bag.auto_batch_size(n, 10.0) for n in (100, 4_900, 14_000, 60_000)] == [64, 64, 128, 512]
    assert bag.auto_batch_size(22_000, 300.0) == 512 > bag.auto_batch_size(22_000, 10.0) == 256


def test_schedules():
    lin = LinearSchedule(warmup_steps=10)
    assert lin.factor(0, 100) == pytest.approx(0.1) and lin.factor(9, 100) == pytest.approx(1.0)
    assert lin.factor(55, 100) == pytest.approx(0.5) and lin.factor(100, 100) == pytest.approx(0.0)
    cos = CosineSchedule(warmup_ratio=0.1)
    assert cos.factor(10, 100) == pytest.approx(1.0) and cos.factor(55, 100) == pytest.approx(0.5)
    assert ConstantSchedule().factor(99, 100) == 1.0


def test_class_weights_from_label_distribution():
    w = class_weights(np.array([90, 10]), "balanced")
    assert w[1] / w[0] == pytest.approx(9.0) and w.mean() == pytest.approx(1.0)
    e = class_weights(np.array([90, 10]), "effective_number", beta=0.9)
    assert e[1] > e[0]
    assert class_weights(np.array([90, 10]), "none") is None


def test_class_balanced_loss_changes_the_loss(tiny_jsonl):
    loss = resolve({"data": {"train": str(tiny_jsonl)}, "trainer": {"loss": {"class_weights": "balanced", "label_smoothing": 0.1}}}).trainer.loss
    module = loss.build(np.array([3, 1]))
    assert module.weight.tolist() == pytest.approx([0.5, 1.5]) and module.label_smoothing == 0.1


def test_sparse_adamw_matches_adam_on_dense_and_sparse_adam_on_sparse():
    torch.manual_seed(0)
    w = torch.randn(6, 3)
    dense_a, dense_b = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    sp_a = torch.nn.Embedding(6, 3, sparse=True)
    sp_b = torch.nn.Embedding(6, 3, sparse=True)
    sp_b.load_state_dict(sp_a.state_dict())
    ours = SparseAdamW([dense_a, sp_a.weight], lr=0.1)
    ref_dense = torch.optim.Adam([dense_b], lr=0.1)
    ref_sparse = torch.optim.SparseAdam([sp_b.weight], lr=0.1)
    for step in range(5):
        idx = torch.tensor([step % 6, (step + 2) % 6, step % 6])
        for dense, emb in ((dense_a, sp_a), (dense_b, sp_b)):
            (dense.pow(2).sum() + emb(idx).pow(2).sum()).backward()
        ours.step(); ref_dense.step(); ref_sparse.step()
        for p in (dense_a, dense_b, sp_a.weight, sp_b.weight):
            p.grad = None
    torch.testing.assert_close(dense_a, dense_b)
    torch.testing.assert_close(sp_a.weight, sp_b.weight)


def test_the_config_name_of_sparse_adamw_resolves_merges_and_reloads_after_its_move(tiny_jsonl, tmp_path):
    """SparseAdamW lives in textsift.backends.torch.optim; configs, the bag's recommended settings and saved model
    directories name it 'textsift.training.optim:SparseAdamW', which must keep resolving to that class, keep merging
    over the recommendation (a mapping of another type would replace it, dropping sparse_eps) and keep loading."""
    from textsift.modeldir import load_config_from
    from textsift.registry import import_path
    from textsift.training import optim

    assert import_path(optim.CONFIG_NAME) is SparseAdamW
    with pytest.raises(AttributeError, match="SPARSE_CAPABLE"):
        optim.SPARSE_CAPABLE  # the config name only, not a second copy of the module
    raw = tiny_config(tiny_jsonl, trainer__epochs=1)
    raw["trainer"]["optimizer"] = {"type": optim.CONFIG_NAME, "lr": 0.1}
    config = resolve(raw)
    assert config.trainer.optimizer.model_extra == {"sparse_eps": 0.2}  # merged over bag's recommended optimizer
    result = textsift.train(config, tmp_path / "run")
    saved = yaml.safe_load((result.model_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["trainer"]["optimizer"]["type"] == optim.CONFIG_NAME
    assert load_config_from(result.model_dir).trainer.optimizer.type == optim.CONFIG_NAME
    texts = ["happy film", "sad end"]
    np.testing.assert_array_equal(textsift.load(result.model_dir).predict(texts).probabilities,
                                  result.predictor.predict(texts).probabilities)


def test_sparse_model_with_a_dense_only_optimizer_is_a_clear_error(tiny_jsonl):
    raw = tiny_config(tiny_jsonl, trainer__epochs=1)
    raw["trainer"]["optimizer"] = {"type": "torch.optim:AdamW"}
    with pytest.raises(ConfigError, match="cannot update the sparse embeddings.*model.sparse: false"):
        textsift.train(resolve(raw))
    raw["model"]["sparse"] = False
    assert textsift.train(resolve(raw)).state.epoch == 1


def test_training_is_seeded_and_deterministic(tiny_jsonl):
    raw = tiny_config(tiny_jsonl, "cnn", trainer__epochs=3)
    a = textsift.train(resolve(raw)).predictor.predict(["happy film"]).probabilities
    b = textsift.train(resolve(raw)).predictor.predict(["happy film"]).probabilities
    np.testing.assert_array_equal(a, b)


def test_run_directory_contents_and_metrics_log(tiny_jsonl, tmp_path):
    result = textsift.train(resolve(tiny_config(tiny_jsonl, trainer__epochs=3, trainer__log_every_steps=1)), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "train.log", "metrics.jsonl", "metrics.json", "checkpoint.safetensors", "model/model.safetensors"):
        assert (run / name).is_file(), name
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1.0, 2.0, 3.0] and "val/accuracy" in epochs[0]
    assert sum(e["event"] == "step" for e in events) == result.state.global_step
    meta = json.loads((run / "model" / "meta.json").read_text())
    assert meta["versions"]["torch"] and meta["data"]["train"] and meta["metrics"]["test/accuracy"] == result.metrics["test/accuracy"]
    # never a pickle: every file of the run and its model directory parses as safetensors, JSON, YAML, text or PNG
    files = {p.relative_to(run).as_posix() for p in assert_only_safe_files(run)}
    assert {"checkpoint.safetensors", "model/model.safetensors", "model/labels.json", "model/meta.json",
            "model/config.yaml", "report/report.html"} <= files


APPENDED = {"train.log", "metrics.jsonl"}  # logs that grow a whole line at a time (metrics.jsonl is cut back atomically)


def test_every_file_of_a_run_appears_by_an_atomic_rename(tiny_jsonl, tmp_path, monkeypatch):
    """A crash leaves the old file or the new one, never half of one: each file of the run directory, or the
    directory holding it (the model directory), is moved into place whole by os.replace."""
    placed: list[Path] = []
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        placed.append(Path(dst).resolve())

    monkeypatch.setattr(os, "replace", replace)
    raw = tiny_config(tiny_jsonl, trainer__epochs=2, trainer__calibration="temperature")
    run = tmp_path / "run"
    textsift.train(resolve(raw), run, checkpoint_every_steps=1)
    textsift.evaluate(run / "model", tiny_jsonl, calibrate_on=True, report=run / "eval")  # calibration.json, a report
    files = [p.resolve() for p in run.rglob("*") if p.is_file()]
    assert {"checkpoint.safetensors", "model.safetensors", "calibration.json", "config.yaml", "metrics.json"} <= {p.name for p in files}
    written_in_place = [str(p.relative_to(run.resolve())) for p in files
                        if p.name not in APPENDED and not any(q in placed for q in (p, *p.parents))]
    assert not written_in_place, f"written in place, not atomically: {written_in_place}"


def test_a_crash_while_saving_leaves_the_old_checkpoint_and_model_directory(tiny_jsonl, tmp_path, monkeypatch):
    from textsift.backends.torch import checkpoint as ckpt

    run = tmp_path / "run"
    result = textsift.train(resolve(tiny_config(tiny_jsonl, trainer__epochs=1)), run)
    checkpoint, model_dir = run / "checkpoint.safetensors", run / "model"
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", crash)  # every atomic write flushes its temporary file before the rename
    model = textsift.load(run)
    with pytest.raises(OSError, match="simulated"):
        ckpt.save_checkpoint(checkpoint, model=model.model, optimizer=torch.optim.SGD(model.model.parameters(), lr=1.0),
                             scheduler=torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD(model.model.parameters(), lr=1.0), lambda s: 1.0),
                             best_weights=None, meta={"state": {}, "callbacks": []})
    from textsift.modeldir import save_model_dir

    with pytest.raises(OSError, match="simulated"):
        save_model_dir(model_dir, config=model.config, model=model.model, tokenizer=model.tokenizer, labels=model.label_names,
                       meta={"replaced": True})
    monkeypatch.undo()
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # the old files, whole, and no temporary file or directory left behind
    assert textsift.load(run).predict(["happy"]).probabilities.tolist() == result.predictor.predict(["happy"]).probabilities.tolist()
    ckpt.load_checkpoint(checkpoint)


def test_existing_run_directory_is_never_overwritten(tiny_jsonl, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("precious")
    with pytest.raises(CheckpointError, match="already holds files. Pass --resume"):
        textsift.train(resolve(tiny_config(tiny_jsonl, trainer__epochs=1)), run)
    assert (run / "notes.txt").read_text() == "precious"


def test_resume_with_a_changed_config_is_refused(tiny_jsonl, tmp_path):
    textsift.train(resolve(tiny_config(tiny_jsonl, trainer__epochs=1)), tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"config differs.*trainer.epochs: 1 -> 2"):
        textsift.train(resolve(tiny_config(tiny_jsonl, trainer__epochs=2)), tmp_path / "run", resume=True)


def _train_cmd(config: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "textsift", "-q", "train", str(config), "--output", str(run), "--checkpoint-every", "5", *extra]


def _complete_lines(path: Path) -> list[dict]:
    """The records of a JSON Lines file another process is writing: a last line without its newline is not read."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.split("\n")[:-1]]


def _comparable(records: list[dict]) -> list[dict]:
    """metrics.jsonl without what differs between two runs of the same config: time and throughput."""
    return [{k: v for k, v in r.items() if k not in ("time", "train/examples_per_s")} for r in records]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "seed": 7,
        "imports": [],
        "data": {"train": {"type": "sort_detection", "size": 600, "seed": 1},
                 "test": {"type": "sort_detection", "size": 200, "seed": 2}},
        "model": {"type": "bag", "head": {"hidden_dims": [16], "dropout": 0.2}},  # dropout: the RNG state matters
        "tokenizer": {"type": "hashed_ngrams", "word_ngrams": 3},
        "trainer": {"epochs": 4, "batch_size": 16, "early_stopping": {"patience": 10}, "log_every_steps": 1,
                    "callbacks": [{"type": "slow_steps:SlowSteps", "seconds": 0.02}]},
    }))
    env = {**os.environ, "PYTHONPATH": f"{PLUGINS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run(_train_cmd(config, tmp_path / "full"), check=True, env=env)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(config, run), env=env)
    log = run / "metrics.jsonl"
    # wait (however long a slow machine takes) until the run is in its second epoch (34 steps each), past a
    # mid-epoch checkpoint (every 5 steps) and with steps logged after it: records the resume must not repeat
    while True:
        steps = [r["step"] for r in _complete_lines(log) if r["event"] == "step"]
        if steps and steps[-1] >= 34 + 8 and steps[-1] % 5 and (run / "checkpoint.safetensors").exists():
            break
        assert proc.poll() is None, "the run ended before it could be killed mid-epoch"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "model").exists()  # it really died before finishing
    subprocess.run(_train_cmd(config, run, "--resume"), check=True, env=env)

    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed == full
    a = textsift.load(tmp_path / "full").predict(["a b c", "c b a"]).probabilities
    b = textsift.load(run).predict(["a b c", "c b a"]).probabilities
    np.testing.assert_array_equal(a, b)
    resumed_log = (run / "train.log").read_text()
    assert "Resumed from" in resumed_log
    # one line per logged step and epoch: the lines written after the last checkpoint appear once, and
    # the log reads as the uninterrupted run's
    full_records = _complete_lines(tmp_path / "full" / "metrics.jsonl")
    resumed_records = _complete_lines(log)
    assert [(r["event"], r["step"]) for r in resumed_records] == [(r["event"], r["step"]) for r in full_records]
    assert _comparable(resumed_records) == _comparable(full_records)


@pytest.fixture(scope="module")
def crashed_and_resumed(tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted run, and the same run crashed after step 7 (its log ahead of the step-6 checkpoint and
    ending in half a line), then resumed: deterministic, in one process."""
    tmp = tmp_path_factory.mktemp("crash")
    data = write_jsonl(tmp / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])
    raw = tiny_config(data, trainer__epochs=2, trainer__batch_size=4, trainer__log_every_steps=1)  # 4 steps an epoch
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(PLUGINS))
        textsift.train(resolve(raw), tmp / "full", checkpoint_every_steps=2)
        raw["trainer"]["callbacks"] = [{"type": "crash_once:CrashOnce", "at_step": 7, "marker": str(tmp / "crashed")}]
        run = tmp / "run"
        with pytest.raises(RuntimeError, match="simulated crash after step 7"):
            textsift.train(resolve(raw), run, checkpoint_every_steps=2)  # the last checkpoint: step 6
        log = run / "metrics.jsonl"
        assert [r["step"] for r in _complete_lines(log)][-1] == 7
        with log.open("a") as f:
            f.write('{"event": "step", "st')  # the process died while writing a line
        textsift.train(resolve(raw), run, checkpoint_every_steps=2, resume=True)
    return tmp / "full" / "metrics.jsonl", log


def test_resume_drops_the_log_lines_written_after_the_checkpoint(crashed_and_resumed):
    full_log, log = crashed_and_resumed
    full, resumed = _complete_lines(full_log), _complete_lines(log)
    assert [(r["event"], r["step"]) for r in resumed] == [(r["event"], r["step"]) for r in full]
    assert _comparable(resumed) == _comparable(full)
    assert log.read_text().endswith("}\n")


def test_resumed_epoch_logs_the_train_loss_of_the_whole_epoch(crashed_and_resumed):
    full_log, log = crashed_and_resumed
    epochs = [[r["train/loss"] for r in _complete_lines(path) if r["event"] == "epoch"] for path in (full_log, log)]
    assert epochs[1] == epochs[0]


def test_text_pairs_train_end_to_end(tmp_path):
    from conftest import write_jsonl

    rows = []
    for a, b in [("the cat sat", "a cat sat"), ("dogs bark loudly", "the dogs bark"), ("red apples", "apples are red"),
                 ("he runs fast", "he is fast")]:
        rows.append({"premise": a, "hypothesis": b, "label": "same"})
    for a, b in [("the cat sat", "stocks fell today"), ("dogs bark loudly", "rain in spain"), ("red apples", "quantum physics"),
                 ("he runs fast", "blue whales sing")]:
        rows.append({"premise": a, "hypothesis": b, "label": "different"})
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    raw = tiny_config(data, "gru", trainer__epochs=40)
    raw["data"]["reader"] = {"type": "jsonl", "text_column": "premise", "text_pair_column": "hypothesis"}
    result = textsift.train(resolve(raw), tmp_path / "run")
    assert result.metrics["test/accuracy"] == 1.0
    loaded = textsift.load(tmp_path / "run")
    preds = loaded.predict(["the cat sat", "the cat sat"], pairs=["a cat sat", "stocks fell today"])
    np.testing.assert_array_equal(preds.probabilities, result.predictor.predict(["the cat sat", "the cat sat"], pairs=["a cat sat", "stocks fell today"]).probabilities)
    assert preds.labels == ["same", "different"]


def test_sparse_adamw_sparse_lr_is_scheduled_sgd_on_sparse_rows():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(5, 2, sparse=True)
    head = torch.nn.Parameter(torch.ones(2))
    before = emb.weight.detach().clone()
    opt = SparseAdamW([{"params": [head]}, {"params": [emb.weight]}], lr=0.1, sparse_lr=3.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)  # the schedule halves every rate
    idx = torch.tensor([1, 3])
    (emb(idx).sum() * 2 + head.sum()).backward()
    opt.step()
    expected = before.clone()
    expected[[1, 3]] -= 3.0 * 0.5 * 2.0  # SGD: rate x schedule factor x gradient
    torch.testing.assert_close(emb.weight.detach(), expected)
    assert not opt.state[emb.weight]  # no Adam moments for the sparse rows
    assert head.detach()[0] < 1.0  # the dense part still moved (Adam)
    del sched


@pytest.mark.parametrize("every_s, saved_at_epochs", [(0.0, [1, 2, 3]), (3600.0, [3])])
def test_checkpoints_at_epoch_ends_follow_the_time_rule_and_always_at_the_end(tiny_jsonl, tmp_path, monkeypatch, every_s,
                                                                               saved_at_epochs):
    """An epoch's end saves only once trainer.checkpoint_every_s have passed (0: every epoch); the end of training
    always saves (the final state, before the best weights are restored), so --resume with more epochs continues."""
    from textsift.backends.torch.trainer import Trainer

    steps: list[int] = []
    real = Trainer.save_checkpoint

    def save(self):
        steps.append(self.state.global_step)
        real(self)

    monkeypatch.setattr(Trainer, "save_checkpoint", save)
    raw = tiny_config(tiny_jsonl, trainer__epochs=3, trainer__batch_size=4, trainer__checkpoint_every_s=every_s,
                      trainer__early_stopping=None)
    result = textsift.train(resolve(raw), tmp_path / "run")
    per_epoch = result.state.global_step // 3
    assert steps == [e * per_epoch for e in saved_at_epochs]  # the end is saved once, not twice
    assert (tmp_path / "run" / "checkpoint.safetensors").is_file()


def test_sparse_gradients_with_repeated_or_unsorted_rows_are_summed_and_unique_ones_kept_as_they_are():
    from textsift.backends.torch.optim import _coalesced

    def grad(rows):
        return torch.sparse_coo_tensor(torch.tensor([rows]), torch.ones(len(rows), 2), (6, 2))

    for rows in ([1, 3, 4], [3, 1, 4], [1, 1, 4], [4]):  # unique sorted, unsorted, repeated, one row
        g = grad(rows)
        assert not g.is_coalesced() or len(rows) == 1  # torch marks a one-row tensor coalesced itself
        out = _coalesced(g)
        assert out.is_coalesced()
        torch.testing.assert_close(out.to_dense(), g.to_dense())
        assert out._indices()[0].tolist() == sorted(set(rows))


def test_bag_with_max_pooling_trains_and_predicts_with_its_default_sparse_table(tmp_path):
    """max pooling with sparse gradients (the bag's default) crashed at the first evaluation: torch's EmbeddingBag
    refuses sparse=True in max mode, which only matters for the gradient."""
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    result = textsift.train(resolve({"data": {"train": str(data), "validation": str(data)},
                                     "model": {"type": "bag", "pooling": "max"}, "trainer": {"epochs": 15}}))
    assert result.predictor.model.embedding.sparse
    assert result.metrics["val/accuracy"] == 1.0


def test_step_losses_are_read_only_where_a_callback_needs_them(tiny_jsonl):
    """The loop hands each step's loss on unread (on a GPU, reading waits for the step): a lazy callback sees it
    unread, a plain callback gets its float, and the epoch's train/loss is the mean of the steps' values."""
    from textsift.backends.torch.trainer import Trainer
    from textsift.batching import EncodedDataset
    from textsift.data.example import Example
    from textsift.training.callbacks import Callback, StepLoss

    config = resolve(tiny_config(tiny_jsonl, "bag", trainer__epochs=2, trainer__batch_size=4,
                                 trainer__main_metric="train/loss", trainer__main_metric_mode="min"))
    tok = config.tokenizer.build()
    examples = [Example(text=t, label=l) for t, l in TINY]
    data = EncodedDataset(tok.fit_encode(examples), np.array([0 if l == "neg" else 1 for _, l in TINY]))
    model = config.model.build(vocab_size=tok.vocab_size, num_labels=2)
    seen: list[tuple[int, StepLoss, bool]] = []
    numbers: list[float] = []
    epochs: list[float] = []

    class Lazy(Callback):
        lazy_loss = True

        def on_batch_end(self, trainer, loss):
            assert isinstance(loss, StepLoss)
            # the previous steps' losses of this epoch are still unread: nothing waited on them
            seen.append((trainer.state.epoch, loss, all(s._number is None for e, s, _ in seen if e == trainer.state.epoch)))

    class Plain(Callback):
        def on_batch_end(self, trainer, loss):
            assert type(loss) is float
            assert trainer.state.last_loss == loss  # the state a plain callback reads is this step's, as before
            numbers.append(loss)

        def on_epoch_end(self, trainer, metrics):
            epochs.append(metrics["train/loss"])

    for callbacks, plain in (([Lazy()], False), ([Lazy(), Plain()], True)):
        seen.clear()
        trainer = Trainer(config.trainer, seed=0, model_spec=config.model, label_names=["neg", "pos"], callbacks=callbacks)
        trainer.fit(model, data, None, loss_fn=torch.nn.CrossEntropyLoss())
        steps = trainer.state.steps_per_epoch
        assert len(seen) == 2 * steps and steps > 1
        if not plain:
            assert all(unread for _, _, unread in seen)
    per_epoch = np.array([float(s) for _, s, _ in seen]).reshape(2, -1)
    np.testing.assert_allclose(numbers, per_epoch.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(epochs, per_epoch.mean(1), rtol=1e-6)
    assert trainer.state.last_loss == pytest.approx(numbers[-1])


def test_trainer_compile_trains_and_saves_what_it_predicts(tiny_jsonl, tmp_path):
    """trainer.compile: the network's forward is compiled in place; it learns, and the model directory (no compiled
    wrapper in its keys) predicts what the trained network computed."""
    config = tiny_config(tiny_jsonl, "cnn", trainer__epochs=8, trainer__compile=True, model__embed_dim=16,
                         model__channels=16)
    result = textsift.train(config, output=tmp_path / "run")
    assert result.metrics["test/accuracy"] >= 0.9  # it learned the tiny data (test = train)
    texts = [t for t, _ in TINY]
    in_memory = result.predictor.predict(texts).probabilities
    np.testing.assert_allclose(textsift.load(tmp_path / "run" / "model").predict(texts).probabilities, in_memory, atol=1e-5)
