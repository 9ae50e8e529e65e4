"""The workflow runner: refs, cache hits and misses, code fingerprints, locking, failures, records."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from textsift.errors import CheckpointError, ConfigError
from textsift.workflow.fingerprint import code_fingerprints
from textsift.workflow.runner import Workflow

REPO = Path(__file__).resolve().parents[1]


def write_workflow(directory: Path, *, model: str = "bag", size: int = 300, epochs: int = 8, extra_steps: dict | None = None,
                   imports: list[str] | None = None, tracking: dict | None = None) -> Path:
    steps = {
        "data": {"type": "dataset", "generate": {"type": "sort_detection", "size": size, "seed": 0}},
        "splits": {"type": "split", "data": {"ref": "data"}, "validation": 0.2, "test": 0.2},
        "model": {"type": "train", "train": {"ref": "splits.train"}, "validation": {"ref": "splits.validation"},
                  "config": {"model": {"type": model}, "trainer": {"epochs": epochs, "early_stopping": None}}},
        "evaluation": {"type": "evaluate", "model": {"ref": "model"}, "data": {"ref": "splits.test"}},
    }
    steps.update(extra_steps or {})
    return write_steps(directory, steps, imports=imports, tracking=tracking)


def write_steps(directory: Path, steps: dict, *, imports: list[str] | None = None, tracking: dict | None = None) -> Path:
    """``directory/workflow.yaml`` with these steps (MLflow off unless ``tracking`` says otherwise)."""
    raw = {"imports": imports or [], "tracking": tracking if tracking is not None else {"mlflow": None}, "steps": steps}
    path = directory / "workflow.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def hits(execution) -> dict[str, bool]:
    return {name: run.cache_hit for name, run in execution.steps.items()}


def test_rerun_is_all_cache_hits_and_results_round_trip(tmp_path):
    path = write_workflow(tmp_path)
    first = Workflow.load(path).run("one")
    assert not any(hits(first).values())
    assert first.results["model"].metrics["val/accuracy"] > 0.5 and first.results["evaluation"].metrics["test/accuracy"] > 0.5
    second = Workflow.load(path).run("two")
    assert all(hits(second).values())
    assert second.results["evaluation"].metrics == first.results["evaluation"].metrics
    assert (second.results["model"].model_dir / "model.safetensors").is_file()
    assert [ex.text for ex in second.results["splits"]["test"].examples] == [ex.text for ex in first.results["splits"]["test"].examples]
    record = json.loads((tmp_path / ".textsift" / "executions" / "two" / "execution.json").read_text())
    assert record["status"] == "finished" and record["git"].keys() == {"commit", "dirty"}
    assert set(record["steps"]) == {"data", "splits", "model", "evaluation"}
    assert all(s["cache_hit"] for s in record["steps"].values())
    assert record["fingerprints"]["model"] == first.steps["model"].fingerprint
    assert {"hostname", "python"} <= set(record["host"]) and "torch" in record["versions"]
    assert record["seeds"]["data"] == {"generate.seed": 0}


def test_parameter_and_upstream_changes_miss(tmp_path):
    path = write_workflow(tmp_path)
    Workflow.load(path).run("one")
    changed = Workflow.load(path, ["steps.model.config.trainer.epochs=9"])
    plans = changed.plan()
    assert [n for n, p in plans.items() if not p.cached] == ["model", "evaluation"]
    assert "settings changed: config" in plans["model"].reason
    assert "input changed: model (model)" in plans["evaluation"].reason
    assert hits(changed.run("two")) == {"data": True, "splits": True, "model": False, "evaluation": False}
    upstream = Workflow.load(path, ["steps.data.generate.size=320"]).run("three")
    assert not any(hits(upstream).values())  # everything downstream of the data changed


def test_a_file_a_setting_names_is_fingerprinted_by_its_content(tmp_path):
    """A string setting that names a file (a tiktoken encoding, a local encoder directory) stands for what the file
    holds: rewritten in place, the step that read it is computed again, not served from the cache."""
    pytest.importorskip("tiktoken")
    import base64

    table = tmp_path / "enc.tiktoken"
    table.write_text("".join(f"{base64.b64encode(bytes([i])).decode()} {i}\n" for i in range(256)))
    path = write_workflow(tmp_path, model="cnn", epochs=1)
    raw = yaml.safe_load(path.read_text())
    raw["steps"]["model"]["config"]["tokenizer"] = {"type": "tiktoken", "encoding": str(table), "max_length": 32}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    Workflow.load(path).run("one")
    assert all(plan.cached for plan in Workflow.load(path).plan().values())
    with table.open("a") as f:  # one merge more: other ids for the same texts
        f.write(f"{base64.b64encode(b'10').decode()} 256\n")
    plans = Workflow.load(path).plan()
    assert [n for n, p in plans.items() if not p.cached] == ["model", "evaluation"]
    assert "settings changed: config" in plans["model"].reason


def _model_module(directory: Path, name: str, body: str) -> Path:
    file = directory / f"{name}.py"
    file.write_text(textwrap.dedent(f"""
        from typing import Literal
        from textsift import registry
        from textsift.backends.torch.networks.bag import BagSpec


        @registry.models.register("{name}")
        class UserBag(BagSpec):
            type: Literal["{name}"] = "{name}"

            def build(self, **kwargs):
                model = super().build(**kwargs)
        {textwrap.indent(textwrap.dedent(body), " " * 8)}
                return model
        """))
    return file


def test_model_source_edits_miss_but_comments_and_formatting_hit(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = "wf_user_model_a"
    module = _model_module(tmp_path, name, "model.scale = 1.0\n")
    path = write_workflow(tmp_path, model=name, imports=[name])
    Workflow.load(path).run("one")

    # a comment, a docstring and new layout: the normalized source is the same
    module.write_text(module.read_text().replace("model.scale = 1.0", "model.scale = (\n            1.0  # unchanged value\n        )")
                      .replace("class UserBag(BagSpec):", 'class UserBag(BagSpec):\n    """A docstring."""\n'))
    plans = Workflow.load(path).plan()
    assert all(p.cached for p in plans.values()), {n: p.reason for n, p in plans.items()}

    module.write_text(module.read_text().replace("1.0  # unchanged value", "2.0"))
    plans = Workflow.load(path).plan()
    assert not plans["model"].cached and plans["data"].cached and plans["splits"].cached
    assert f"source changed: {name}:UserBag" in plans["model"].reason


def test_textsift_code_used_by_a_component_is_followed(tmp_path):
    from textsift.backends.torch.networks.bag import BagSpec

    keys = code_fingerprints([BagSpec])
    # the spec builds BagClassifier, which uses _GatherRows; the head comes from another module
    assert {"textsift.backends.torch.networks.bag:BagSpec", "textsift.backends.torch.networks.bag:BagClassifier", "textsift.backends.torch.networks.bag:_GatherRows"} <= set(keys)
    assert any(k.startswith("textsift.backends.torch.networks.heads:") for k in keys)
    assert not any(k.startswith("torch.") for k in keys)  # installed packages are covered by versions


def _step_module(directory: Path, name: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent("""
        import os, time
        from pathlib import Path
        from textsift.workflow import step

        @step("slow_count")
        def slow_count(log: str, seconds: float = 1.5) -> dict:
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\\n")
            time.sleep(seconds)
            return {"pid": os.getpid()}

        @step("fragile")
        def fragile(flag: str, output_dir: Path) -> dict:
            (output_dir / "partial.txt").write_text("half done")
            if os.path.exists(flag):
                raise RuntimeError("failing on purpose")
            return {"ok": True}
        """))


def test_two_processes_compute_a_step_once(tmp_path):
    _step_module(tmp_path, "wf_steps_b")
    log = tmp_path / "computed.log"
    path = write_steps(tmp_path, {"slow": {"type": "slow_count", "log": str(log), "seconds": 3}}, imports=["wf_steps_b"])
    env = {**os.environ, "PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-m", "textsift", "-q", "run", str(path), "-e", f"p{i}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate() for p in procs]  # no deadline: a slow machine is not a failure
    assert all(p.returncode == 0 for p in procs), outputs
    assert len(log.read_text().split()) == 1  # computed by one process only
    records = [json.loads((tmp_path / ".textsift" / "executions" / f"p{i}" / "execution.json").read_text()) for i in range(2)]
    assert sorted(r["steps"]["slow"]["cache_hit"] for r in records) == [False, True]


def test_a_failing_step_leaves_no_entry_and_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _step_module(tmp_path, "wf_steps_c")
    flag = tmp_path / "fail.flag"
    flag.write_text("x")
    path = write_steps(tmp_path, {"f": {"type": "fragile", "flag": str(flag)}}, imports=["wf_steps_c"])
    workflow = Workflow.load(path)
    with pytest.raises(RuntimeError, match="failing on purpose"):
        workflow.run("one")
    plan = workflow.plan()["f"]
    assert not plan.cached and not workflow.cache.has(plan.fingerprint)
    record = json.loads((tmp_path / ".textsift" / "executions" / "one" / "execution.json").read_text())
    assert record["status"] == "failed"
    flag.unlink()
    again = Workflow.load(path).run("two")
    assert hits(again) == {"f": False} and again.results["f"] == {"ok": True}
    assert Workflow.load(path).plan()["f"].cached


def test_execution_ids_step_selection_and_force(tmp_path):
    path = write_workflow(tmp_path)
    workflow = Workflow.load(path)
    only = workflow.run("one", steps=["splits"])
    assert list(only.steps) == ["data", "splits"]
    with pytest.raises(CheckpointError, match="Execution 'one' already exists"):
        workflow.run("one")
    resumed = workflow.run("one", resume=True)
    assert hits(resumed) == {"data": True, "splits": True, "model": False, "evaluation": False}
    forced = Workflow.load(path).run("two", force=["model"])
    assert hits(forced) == {"data": True, "splits": True, "model": False, "evaluation": True}


def test_workflow_errors_name_the_step(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"steps": {"a": {"type": "dataset", "generate": {"type": "sort_detection"}},
                                             "b": {"type": "split", "data": {"ref": "aa"}}}}))
    with pytest.raises(ConfigError, match=r"steps.b.data: \{ref: 'aa'\} names no step. Did you mean 'a'\?"):
        Workflow.load(bad)
    bad.write_text(yaml.safe_dump({"steps": {"a": {"type": "split", "data": {"ref": "b"}}, "b": {"type": "split", "data": {"ref": "a"}}}}))
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        Workflow.load(bad)
    bad.write_text(yaml.safe_dump({"steps": {"a": {"type": "dataset", "genrate": {"type": "sort_detection"}}}}))
    with pytest.raises(ConfigError, match="'dataset' has no setting 'genrate'. Did you mean 'generate'"):
        Workflow.load(bad)
    bad.write_text(yaml.safe_dump({"steps": {"a": {"type": "trian"}}}))
    with pytest.raises(ConfigError, match="unknown step type 'trian'. Did you mean 'train'"):
        Workflow.load(bad)
    bad.write_text(yaml.safe_dump({"steps": {"a": {"type": "split", "data": {"ref": "b"}, "validation": "lots"}, "b": {"type": "dataset", "path": "x"}}}))
    with pytest.raises(ConfigError, match="steps.a.validation"):
        Workflow.load(bad)


def test_cli_run_and_show(tmp_path):
    from test_cli import run

    path = write_workflow(tmp_path)
    result = run("run", str(path), "--execution-id", "cli-1")
    assert result.exit_code == 0, result.output + result.stderr
    shown = run("workflow", "show", str(path), "--set", "steps.model.config.trainer.epochs=4")
    assert shown.exit_code == 0
    lines = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines() if line.startswith("│") and line.split("│")[1].strip()}
    assert "cached" in lines["data"] and "stale" in lines["model"] and "stale" in lines["evaluation"]
    again = run("run", str(path), "--execution-id", "cli-1")
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_fingerprints_do_not_depend_on_what_the_process_imported(tmp_path):
    path = write_workflow(tmp_path)
    Workflow.load(path).run("one")  # in this process, after running everything
    fresh = subprocess.run([sys.executable, "-m", "textsift", "workflow", "show", str(path), "--json"], capture_output=True,
                           text=True)
    assert fresh.returncode == 0, fresh.stderr
    rows = json.loads(fresh.stdout)
    assert [r["step"] for r in rows] == ["data", "splits", "model", "evaluation"]
    assert all(r["status"] == "cached" for r in rows), rows


# --- results outside the cache, and paths inside it --------------------------------------------

def _export_workflow(directory: Path, epochs: int) -> Path:
    return write_workflow(directory, size=120, epochs=epochs,
                          extra_steps={"export": {"type": "export", "model": {"ref": "model"}, "path": "exported/model"}})


def _same_model(a: Path, b: Path) -> bool:
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in ("model.safetensors", "meta.json", "config.yaml", "labels.json"))


def test_export_holds_the_model_of_the_fingerprint_it_is_served_under(tmp_path, caplog):
    exported = tmp_path / "exported" / "model"
    one = Workflow.load(_export_workflow(tmp_path, 1)).run("one")
    two = Workflow.load(_export_workflow(tmp_path, 2)).run("two")
    assert hits(two)["model"] is False and _same_model(exported, two.results["model"].model_dir)

    back = Workflow.load(_export_workflow(tmp_path, 1))  # the setting goes back: model and export fingerprints as in "one"
    plans = back.plan()
    assert plans["model"].cached and not plans["export"].cached
    assert plans["export"].reason == f"its result outside the cache ({exported}) is gone or changed"
    with caplog.at_level(logging.INFO, logger="textsift"):
        three = back.run("three")
    assert hits(three) == {"data": True, "splits": True, "model": True, "evaluation": True, "export": False}
    assert three.steps["export"].fingerprint == one.steps["export"].fingerprint
    assert _same_model(exported, one.results["model"].model_dir)
    assert not _same_model(exported, two.results["model"].model_dir)
    assert any(f"Step export (export): computing [its result outside the cache ({exported}) is gone or changed]" in r.getMessage()
               for r in caplog.records)
    assert all(hits(Workflow.load(_export_workflow(tmp_path, 1)).run("four")).values())


def test_an_edited_or_deleted_export_is_written_again(tmp_path):
    path = _export_workflow(tmp_path, 1)
    exported = tmp_path / "exported" / "model"
    model_dir = Workflow.load(path).run("one").results["model"].model_dir
    (exported / "labels.json").write_text("[]")
    assert not Workflow.load(path).plan()["export"].cached
    assert hits(Workflow.load(path).run("two"))["export"] is False and _same_model(exported, model_dir)
    (exported / "model.safetensors").unlink()  # no longer a model directory, but this step's own export
    assert hits(Workflow.load(path).run("three"))["export"] is False and _same_model(exported, model_dir)
    shutil.rmtree(exported)
    assert hits(Workflow.load(path).run("four"))["export"] is False and _same_model(exported, model_dir)
    assert hits(Workflow.load(path).run("five"))["export"] is True


def test_export_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    foreign = tmp_path / "exported" / "model"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=rf"{foreign} exists and is not a textsift model directory.*another 'path'.*remove"):
        Workflow.load(_export_workflow(tmp_path, 1)).run("one")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"] and (foreign / "notes.txt").read_text() == "mine"


def _user_steps_module(directory: Path, name: str) -> None:
    """Steps registered as NAME_fresh_split, NAME_note and NAME_checked (names are global: one module, one prefix)."""
    (directory / f"{name}.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        from textsift.data.example import Dataset
        from textsift.workflow import step
        from textsift.workflow.builtin import split


        @step("{name}_fresh_split", cache=False)
        def fresh_split(data: Dataset) -> dict:
            # datasets without a cached file: the train step writes them under its output_dir
            return {{k: Dataset(f"fresh {{k}}", v.examples) for k, v in split(data, validation=0.2, test=0.2).items()}}


        @step("{name}_note")
        def note(text: str, path: str, context) -> dict:
            target = context.external(Path(path))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            return {{"path": str(target)}}


        @step("{name}_checked", verify=lambda result: Path(result["flag"]).exists())
        def checked(flag: str) -> dict:
            return {{"flag": flag}}
        """))


def test_user_steps_declare_results_outside_the_cache(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _user_steps_module(tmp_path, "wf_steps_d")
    flag = tmp_path / "flag"
    flag.write_text("x")
    path = write_steps(tmp_path, {
        "note": {"type": "wf_steps_d_note", "text": "hello", "path": "out/note.txt"},
        "checked": {"type": "wf_steps_d_checked", "flag": str(flag)}}, imports=["wf_steps_d"])
    assert hits(Workflow.load(path).run("one")) == {"note": False, "checked": False}
    assert hits(Workflow.load(path).run("two")) == {"note": True, "checked": True}
    note = tmp_path / "out" / "note.txt"
    note.write_text("edited")
    flag.unlink()
    plans = Workflow.load(path).plan()
    assert plans["note"].reason == f"its result outside the cache ({note}) is gone or changed"
    assert not plans["checked"].cached and "outside the cache" in plans["checked"].reason
    assert hits(Workflow.load(path).run("three")) == {"note": False, "checked": False}
    assert note.read_text() == "hello"


def test_paths_in_cached_results_name_the_entry(tmp_path, caplog, monkeypatch):
    from test_cli import run

    monkeypatch.syspath_prepend(str(tmp_path))
    _user_steps_module(tmp_path, "wf_steps_e")
    path = write_steps(tmp_path, {
        "data": {"type": "dataset", "generate": {"type": "sort_detection", "size": 120, "seed": 0}},
        "splits": {"type": "wf_steps_e_fresh_split", "data": {"ref": "data"}},
        "model": {"type": "train", "train": {"ref": "splits.train"}, "validation": {"ref": "splits.validation"},
                  "test": {"ref": "splits.test"}, "config": {"model": {"type": "bag"}, "trainer": {"epochs": 1}}},
        "evaluation": {"type": "evaluate", "model": {"ref": "model"}, "data": {"ref": "splits.test"}}}, imports=["wf_steps_e"])
    workflow = Workflow.load(path)
    with caplog.at_level(logging.INFO, logger="textsift"):
        execution = workflow.run("one")
    model_entry, eval_entry = (Path(execution.steps[n].entry) for n in ("model", "evaluation"))
    assert not (workflow.cache.root / "work" / execution.steps["model"].fingerprint).exists()

    train_report = json.loads((model_entry / "run" / "report" / "report.json").read_text())
    assert train_report["model_dir"] == str(model_entry / "run" / "model")
    assert train_report["data"] == str(model_entry / "data" / "test.jsonl") and Path(train_report["data"]).is_file()
    eval_report = json.loads((eval_entry / "report" / "report.json").read_text())
    assert Path(eval_report["model_dir"]).is_dir() and eval_report["model_dir"] == str(model_entry / "run" / "model")
    config = yaml.safe_load((model_entry / "run" / "model" / "config.yaml").read_text())
    for split_name in ("train", "validation", "test"):
        assert config["data"][split_name] == str(model_entry / "data" / f"{split_name}.jsonl")
        assert Path(config["data"][split_name]).is_file()
    work = str(workflow.cache.root / "work")
    for file in (*model_entry.rglob("*"), *eval_entry.rglob("*")):
        if file.suffix in (".json", ".yaml", ".jsonl", ".log", ".csv", ".html"):
            assert work not in file.read_text(encoding="utf-8"), file

    reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Report: ")]
    assert len(reports) == 2, reports
    assert reports[0].startswith(f"Report: {model_entry / 'run' / 'report'} ")
    assert reports[1].startswith(f"Report: {eval_entry / 'report'} ")
    assert not any(work in r.getMessage() for r in caplog.records)

    copy = tmp_path / "model_copy"  # --calibrate saves into the model directory: leave the cache entry alone
    shutil.copytree(model_entry / "run" / "model", copy)
    result = run("evaluate", str(copy), config["data"]["test"], "--calibrate")
    assert result.exit_code == 0, result.output + result.stderr


def test_predict_step_answers_every_example_and_evaluate_step_calibrates_without_touching_the_model(tmp_path):
    extra = {
        "predictions": {"type": "predict", "model": {"ref": "model"}, "data": {"ref": "splits.test"}, "top_k": 1},
        "calibrated": {"type": "evaluate", "model": {"ref": "model"}, "data": {"ref": "splits.test"},
                       "calibrate_on": {"ref": "splits.validation"}},
    }
    execution = Workflow.load(write_workflow(tmp_path, extra_steps=extra)).run("one")
    test = execution.results["splits"]["test"].examples
    records = [json.loads(line) for line in execution.results["predictions"].path.read_text().splitlines()]
    assert execution.results["predictions"].count == len(records) == len(test)
    assert [r["text"] for r in records] == [ex.text for ex in test]  # one record per example, in order
    assert [r["row"] for r in records] == [ex.row for ex in test]
    assert all(r["top_k"][0]["label"] == r["label"] for r in records)
    plain = json.loads((execution.results["evaluation"].path / "report.json").read_text())
    calibrated = json.loads((execution.results["calibrated"].path / "report.json").read_text())
    assert plain["temperature"] == 1.0 and calibrated["temperature"] != 1.0
    assert execution.results["calibrated"].metrics["test/accuracy"] == execution.results["evaluation"].metrics["test/accuracy"]
    assert not (execution.results["model"].model_dir / "calibration.json").exists()  # the cached model is never changed
