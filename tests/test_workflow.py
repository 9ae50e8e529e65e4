"""The workflow runner: refs, cache hits and misses, code fingerprints, locking, failures, records."""

from __future__ import annotations

import json
import os
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


def _model_module(directory: Path, name: str, body: str) -> Path:
    file = directory / f"{name}.py"
    file.write_text(textwrap.dedent(f"""
        from typing import Literal
        from textsift import registry
        from textsift.models.torch.bag import BagSpec


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
    from textsift.models.torch.bag import BagSpec

    keys = code_fingerprints([BagSpec])
    # the spec builds BagClassifier, which uses _GatherRows; the head comes from another module
    assert {"textsift.models.torch.bag:BagSpec", "textsift.models.torch.bag:BagClassifier", "textsift.models.torch.bag:_GatherRows"} <= set(keys)
    assert any(k.startswith("textsift.models.torch.heads:") for k in keys)
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
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump({"imports": ["wf_steps_b"], "tracking": {"mlflow": None},
                                    "steps": {"slow": {"type": "slow_count", "log": str(log), "seconds": 3}}}))
    env = {**os.environ, "PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-m", "textsift", "-q", "run", str(path), "-e", f"p{i}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert len(log.read_text().split()) == 1  # computed by one process only
    records = [json.loads((tmp_path / ".textsift" / "executions" / f"p{i}" / "execution.json").read_text()) for i in range(2)]
    assert sorted(r["steps"]["slow"]["cache_hit"] for r in records) == [False, True]


def test_a_failing_step_leaves_no_entry_and_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _step_module(tmp_path, "wf_steps_c")
    flag = tmp_path / "fail.flag"
    flag.write_text("x")
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump({"imports": ["wf_steps_c"], "tracking": {"mlflow": None},
                                    "steps": {"f": {"type": "fragile", "flag": str(flag)}}}))
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
                           text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    rows = json.loads(fresh.stdout)
    assert [r["step"] for r in rows] == ["data", "splits", "model", "evaluation"]
    assert all(r["status"] == "cached" for r in rows), rows
