"""Hyperparameter search (Optuna) and population-based training (Ray Tune) on the toy task."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from textsift.config import load_config
from textsift.errors import ConfigError, TextsiftError
from textsift.tuning.space import SearchSpace
from textsift.tuning.study import run_study

TOY = {
    "seed": 0,
    "data": {"train": {"type": "sort_detection", "size": 500, "seed": 1, "hard_fraction": 0.0}, "validation_split": 0.2},
    "tokenizer": {"type": "words"},
    "model": {"type": "cnn", "embed_dim": 16, "channels": 16, "kernel_size": 2},
    "trainer": {"epochs": 4, "batch_size": 32, "early_stopping": None, "num_threads": 1,
                "optimizer": {"type": "torch.optim:AdamW", "lr": 1.0e-5}},  # a deliberately bad learning rate
}


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def toy(tmp_path) -> Path:
    return write(tmp_path / "toy.yaml", TOY)


def baseline(config: Path, tmp: Path) -> float:
    import textsift

    return textsift.train(load_config(config), tmp / "baseline", report=False).state.best_metric


def test_search_beats_a_bad_baseline(toy, tmp_path):
    space = SearchSpace.from_dict({"trainer.optimizer.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
                                   "model.dropout": {"type": "float", "low": 0.0, "high": 0.3}})
    base = baseline(toy, tmp_path)
    result = run_study(toy, space, trials=4, study_name="toy", output=tmp_path / "out", pruner="none")
    assert result.best_value > base + 0.1, (result.best_value, base)
    out = tmp_path / "out"
    best = load_config(out / "best_config.yaml")
    assert best.trainer.optimizer.lr == pytest.approx(result.best_params["trainer.optimizer.lr"])
    assert best.model.embed_dim == 16  # the complete config: base settings plus the best values
    assert (out / "best_model" / "model.safetensors").is_file()
    rows = list(__import__("csv").DictReader((out / "trials.csv").open()))
    assert len(rows) == 4 and {r["state"] for r in rows} == {"complete"}
    assert (out / "optimization_history.png").is_file() and (out / "param_importances.png").is_file()
    with pytest.raises(ConfigError, match="already exists .* Pass --resume"):
        run_study(toy, space, trials=1, study_name="toy", output=tmp_path / "out")
    again = run_study(toy, space, trials=1, study_name="toy", output=tmp_path / "out", resume=True, pruner="none")
    assert sum(again.counts.values()) == 5


def test_pruning_stops_hopeless_trials(toy, tmp_path):
    # half the learning rates cannot learn anything in 4 epochs: the median pruner stops those after epoch 1
    space = SearchSpace.from_dict({"trainer.optimizer.lr": [1e-6, 2e-2], "model.dropout": {"type": "float", "low": 0.0, "high": 0.2}})
    result = run_study(toy, space, trials=10, study_name="prune", output=tmp_path / "out", sampler="random", pruner="median",
                       overrides=["trainer.epochs=5"])
    assert result.counts.get("pruned", 0) >= 2, result.counts
    pruned = [t for t in result.study.trials if t.state.name == "PRUNED"]
    for t in pruned:  # stopped early: fewer epochs logged than the 5 a full trial trains
        log = Path(t.user_attrs["run_dir"]) / "metrics.jsonl"
        epochs = [json.loads(line) for line in log.read_text().splitlines() if '"event": "epoch"' in line]
        assert len(epochs) < 5
    assert sum(t.params["trainer.optimizer.lr"] == 1e-6 for t in pruned) >= 2  # the hopeless ones, above all


def test_failing_trials_are_recorded_and_all_failing_is_an_error(toy, tmp_path):
    space = SearchSpace.from_dict({"model.dropout": [0.1, 0.2], "trainer.optimizer.lr": [1e-2]})
    # a trial fails (the training data disappears mid-study); the study goes on
    flaky = write(tmp_path / "flaky.yaml", {**TOY, "data": {"train": str(tmp_path / "gone.jsonl"), "validation_split": 0.2}})
    (tmp_path / "gone.jsonl").write_text("".join(json.dumps({"text": f"a b {i % 2}", "label": str(i % 2)}) + "\n" for i in range(60)))
    study = run_study(flaky, space, trials=1, study_name="flaky", output=tmp_path / "flaky")
    (tmp_path / "gone.jsonl").unlink()
    result = run_study(flaky, space, trials=2, study_name="flaky", output=tmp_path / "flaky", resume=True)
    failed = [t for t in result.study.trials if t.state.name == "FAIL"]
    assert len(failed) == 2 and all("does not exist" in t.user_attrs["error"] for t in failed)
    assert study.counts == {"complete": 1} and result.counts == {"complete": 1, "fail": 2}
    rows = list(__import__("csv").DictReader((tmp_path / "flaky" / "trials.csv").open()))
    assert sum("does not exist" in r["error"] for r in rows) == 2
    with pytest.raises(TextsiftError, match=r"no trial completed \(2 trials: 2x DataError: Data file"):
        run_study(flaky, space, trials=2, study_name="all-fail", output=tmp_path / "all-fail")


def test_bad_space_paths_fail_before_any_trial(toy, tmp_path):
    with pytest.raises(ConfigError, match="search space: model.dropuot"):
        run_study(toy, SearchSpace.from_dict({"model.dropuot": [0.1]}), trials=1, study_name="x", output=tmp_path / "o")
    with pytest.raises(ConfigError, match="low \\(0.5\\) must be below high \\(0.1\\)"):
        SearchSpace.from_dict({"model.dropout": {"type": "float", "low": 0.5, "high": 0.1}})


def test_two_workers_share_one_sqlite_study(toy, tmp_path):
    space = write(tmp_path / "space.yaml", {"trainer.optimizer.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}})
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    cmd = [sys.executable, "-m", "textsift", "-q", "tune", str(toy), "--space", str(space), "--trials", "2", "--study", "shared",
           "--storage", storage, "--resume", "--pruner", "none", "--set", "trainer.epochs=2"]
    procs = [subprocess.Popen(cmd + ["--output", str(tmp_path / f"w{i}"), "--seed", str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 4 and len({t.number for t in trials}) == 4
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes' trials landed in the one study
    assert len({t.params["trainer.optimizer.lr"] for t in trials}) == 4


def test_study_on_postgresql(toy, tmp_path, postgres_url):
    space = SearchSpace.from_dict({"trainer.optimizer.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}})
    result = run_study(toy, space, trials=2, study_name="pg", output=tmp_path / "out", storage=postgres_url, pruner="none",
                       overrides=["trainer.epochs=2"])
    import optuna

    loaded = optuna.load_study(study_name="pg", storage=postgres_url)
    assert len(loaded.trials) == 2 and loaded.best_value == pytest.approx(result.best_value)
    assert not (tmp_path / "out" / "study.db").exists()  # nothing went to the default SQLite file


PLUGINS = Path(__file__).parent / "plugins"
EXPLOIT = re.compile(r"\[Exploit\] Cloning trial (\w+) \(score = [-\d.]+\) into trial (\w+)")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A Ray instance of these tests' own, its files in a pytest folder (not Ray's default temp folder), shut down
    after. Its workers find the test plugins (PYTHONPATH is inherited from here)."""
    import ray

    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths under it must stay below 108 characters
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(PLUGINS), *filter(None, [os.environ.get("PYTHONPATH")])]))
        mp.syspath_prepend(str(PLUGINS))
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, _temp_dir=str(temp))
        try:
            yield temp
        finally:
            ray.shutdown()


def _records(directory: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in directory.glob("*.json")), key=lambda r: r["time"])


@pytest.fixture(scope="module")
def pbt_run(tmp_path_factory, local_ray) -> tuple[dict, list[tuple[str, str]], list[dict], Path]:
    """3 members, synchronous, never resampling: at every epoch the weakest exploits the strongest and explores
    x0.8 or x1.2. Returns the summary, the exploits in pbt.log (source, member), the probe's records, the config."""
    from textsift.tuning.pbt import run_pbt

    tmp = tmp_path_factory.mktemp("pbt")
    probe = tmp / "probe"
    trainer = {**TOY["trainer"], "epochs": 3, "scheduler": {"type": "linear", "warmup_ratio": 0.2},  # 8 warmup steps
               "callbacks": [{"type": "pbt_probe:PbtProbe", "out": str(probe)}]}
    config = write(tmp / "toy.yaml", {**TOY, "trainer": trainer})
    space = SearchSpace.from_dict({"trainer.optimizer.lr": {"type": "float", "low": 1e-5, "high": 3e-2, "log": True}})
    summary = run_pbt(config, space, population=3, output=tmp / "pbt", interval=1, seed=0, resample_probability=0.0,
                      synch=True)
    exploits = EXPLOIT.findall((tmp / "pbt" / "pbt.log").read_text())
    assert (tmp / "pbt" / "best_config.yaml").is_file()
    return summary, exploits, _records(probe), config


def _restarts(records: list[dict]) -> list[dict]:
    """The members' starts from a checkpoint (synchronous PBT pauses every member at every interval)."""
    return [r for r in records if r["event"] == "start" and r["step"] > 0]


def test_population_based_training_copies_weights_and_perturbs_on_exploit(pbt_run):
    summary, exploits, records, config = pbt_run
    assert summary["exploits"] == len(exploits) >= 2
    # every restart starts from a checkpoint at that step: its own, with its settings unchanged, or - exploited -
    # the source's, with the source's learning rate x0.8 or x1.2
    checkpoints = {(r["trial"], r["step"]): r for r in records if r["event"] == "epoch"}
    cloned = []
    for restart in _restarts(records):
        own = checkpoints[(restart["trial"], restart["step"])]
        if own["weights"] == restart["weights"]:
            assert restart["lr"] == own["lr"]
            continue
        sources = [c for (trial, step), c in checkpoints.items()
                   if step == restart["step"] and trial != restart["trial"] and c["weights"] == restart["weights"]]
        assert len(sources) == 1, f"{restart['trial']} restarted at step {restart['step']} from no checkpoint of that step"
        cloned.append((sources[0]["trial"], restart["trial"]))
        ratio = restart["lr"] / sources[0]["lr"]
        assert min(abs(ratio - 0.8), abs(ratio - 1.2)) < 1e-9, ratio
    assert sorted(cloned) == sorted(exploits)  # each exploit the log names copied the weights it names
    with pytest.raises(ConfigError, match="PBT perturbs hyperparameters mid-training"):
        from textsift.tuning.pbt import run_pbt

        run_pbt(config, SearchSpace.from_dict({"model.channels": [8, 16]}), population=2, output=config.parent / "x")


def test_a_warm_started_member_trains_at_its_learning_rate(pbt_run):
    _, _, records, _ = pbt_run
    for restart in _restarts(records):
        assert restart["initial_lr"] == [pytest.approx(restart["lr"])] * len(restart["initial_lr"])
