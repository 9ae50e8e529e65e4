"""Workflow files, step fingerprints, and running steps through the cache with an execution record.

A workflow file (YAML or Jsonnet)::

    imports: [my_steps]                 # modules that register steps or components
    home: .textsift                     # cache, executions, MLflow store (relative to this file)
    tracking: {mlflow: {}, tensorboard: null}
    steps:
      data:  {type: dataset, generate: {type: sort_detection, size: 2000}}
      split: {type: split, data: {ref: data}, validation: 0.1, test: 0.2}
      model: {type: train, train: {ref: split.train}, validation: {ref: split.validation}, config: {model: bag}}
      eval:  {type: evaluate, model: {ref: model}, data: {ref: split.test}}

A step's fingerprint covers its name and type, its settings, the fingerprints of the steps it refers
to, the normalized source of its function and of the components it builds (and the project code they
use, transitively), and the textsift version.

A step that writes outside its cache entry (the export step) declares those paths with
``context.external(path)``; their content digests are recorded in the entry, and a would-be cache hit
whose paths are gone or changed runs the step again instead of serving a result the files contradict.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib
import json
import logging
import os
import platform
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from textsift.config.loader import apply_overrides, read_config_file
from textsift.config.spec import Section
from textsift.errors import CheckpointError, ConfigError, did_you_mean
from textsift.util import atomic_write_text, file_fingerprint
from textsift.workflow import results
from textsift.workflow.cache import Cache, content_digest
from textsift.workflow.fingerprint import code_fingerprints, textsift_version
from textsift.workflow.steps import StepDef, get_step

logger = logging.getLogger(__name__)


class MlflowSettings(Section):
    tracking_uri: str | None = Field(None, description="Tracking URI; default: sqlite:///HOME/mlflow.db (artifacts in HOME/mlartifacts).")
    experiment: str | None = Field(None, description="Experiment name; default: the workflow file's name.")
    log_artifacts: bool = Field(True, description="Upload model directories and reports as run artifacts.")


class TensorBoardSettings(Section):
    log_dir: str | None = Field(None, description="Default: HOME/tensorboard.")


class TrackingSettings(Section):
    mlflow: MlflowSettings | None = Field(default_factory=MlflowSettings, description="null: no MLflow.")
    tensorboard: TensorBoardSettings | None = Field(None, description="{}: write TensorBoard event files.")


class WorkflowFile(Section):
    imports: list[str] = Field(default_factory=list)
    home: str = Field(".textsift", description="Cache, executions and the default MLflow store; relative to the workflow file.")
    cache: str | None = Field(None, description="Step cache directory; default HOME/cache.")
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    steps: dict[str, dict[str, Any]]


@dataclass
class Ref:
    step: str
    path: list[str]

    def __str__(self) -> str:
        return ".".join([self.step, *self.path])


@dataclass
class StepNode:
    name: str
    type: str
    definition: StepDef
    settings: dict[str, Any]  # validated values (no refs)
    refs: dict[str, Ref]
    raw: dict[str, Any]


@dataclass
class Plan:
    fingerprint: str
    record: dict[str, Any]
    cached: bool
    reason: str


@dataclass
class StepRun:
    name: str
    fingerprint: str
    cache_hit: bool
    seconds: float
    entry: str | None
    status: str = "finished"


@dataclass
class Execution:
    id: str
    directory: Path
    steps: dict[str, StepRun] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"ref"}


def _find_nested_ref(value: Any) -> bool:
    if _is_ref(value):
        return True
    if isinstance(value, dict):
        return any(_find_nested_ref(v) for v in value.values())
    if isinstance(value, list):
        return any(_find_nested_ref(v) for v in value)
    return False


#: a field's ``json_schema_extra`` key saying that the string it holds may name an input file or directory (a
#: tiktoken encoding file, a local encoder), which the fingerprint then reads by content (an output path must not)
INPUT_PATH = "input_path"


def _model_canonical(value: BaseModel, dumped: dict[str, Any], base_dir: Path) -> Any:
    """:func:`canonical` of ``dumped`` (``value``'s JSON form, dumped once at the top), reading the fields of
    ``value`` (and of its nested models) marked :data:`INPUT_PATH` by the content of the path they name."""
    out = {}
    for name, json_value in dumped.items():
        field_info = type(value).model_fields.get(name)
        extra = field_info.json_schema_extra if field_info is not None and isinstance(field_info.json_schema_extra, dict) else {}
        python_value = getattr(value, name, None)
        named = Path(python_value).expanduser() if extra.get(INPUT_PATH) and isinstance(python_value, str) else None
        if isinstance(python_value, BaseModel) and isinstance(json_value, dict):
            out[name] = _model_canonical(python_value, json_value, base_dir)
        elif named is not None and named.exists():
            out[name] = canonical(named.resolve(), base_dir)
        else:
            out[name] = canonical(json_value, base_dir)
    return out


def canonical(value: Any, base_dir: Path) -> Any:
    """A JSON form of a validated setting that changes exactly when the setting does (files by content: settings
    typed as paths, and string fields marked :data:`INPUT_PATH` when they name a file or directory that exists)."""
    if isinstance(value, BaseModel):
        return _model_canonical(value, value.model_dump(mode="json"), base_dir)
    if isinstance(value, Path):
        path = value if value.is_absolute() else base_dir / value
        if path.is_file():
            return {"file": str(path), "sha256": file_fingerprint(path)}
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            return {"dir": str(path), "files": [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]}
        return {"path": str(path)}
    if isinstance(value, dict):
        return {str(k): canonical(v, base_dir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v, base_dir) for v in value]
    return value


def _absolute_paths(value: Any, base_dir: Path) -> Any:
    if isinstance(value, Path) and not value.is_absolute():
        return (base_dir / value).resolve()
    return value


class Workflow:
    def __init__(self, path: Path, spec: WorkflowFile, raw: dict[str, Any]) -> None:
        self.path = path
        self.base_dir = path.resolve().parent
        self.spec = spec
        self.raw = raw
        self.home = (self.base_dir / spec.home).resolve()
        self.cache = Cache((self.base_dir / spec.cache).resolve() if spec.cache else self.home / "cache")
        self.nodes: dict[str, StepNode] = {}
        for name, body in spec.steps.items():
            self.nodes[name] = self._node(name, body)
        for node in self.nodes.values():
            for param, ref in node.refs.items():
                if ref.step not in self.nodes:
                    raise ConfigError(
                        f"{self.path}: steps.{node.name}.{param}: {{ref: '{ref}'}} names no step.{did_you_mean(ref.step, self.nodes)} "
                        f"Steps: {', '.join(self.nodes)}."
                    )
        self.order = self._topological_order()

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | None = None) -> "Workflow":
        path = Path(path)
        raw = apply_overrides(read_config_file(path), overrides or [])
        try:
            spec = WorkflowFile.model_validate(raw)
        except Exception as exc:  # pydantic's message, with the file named
            from pydantic import ValidationError

            if isinstance(exc, ValidationError):
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise ConfigError(f"{path}: {problems}") from None
            raise
        for module in spec.imports:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(f"{path}: imports: cannot import '{module}' ({exc}).") from None
        return cls(path, spec, raw)

    def _node(self, name: str, body: dict[str, Any]) -> StepNode:
        where = f"{self.path}: steps.{name}"
        if not isinstance(body, dict) or "type" not in body:
            raise ConfigError(f"{where}: a step needs a 'type' (one of: {', '.join(_step_names())}).")
        from textsift import registry

        type_name = body["type"]
        try:
            definition = get_step(type_name)
        except ConfigError:
            raise ConfigError(f"{where}.type: unknown step type '{type_name}'.{did_you_mean(type_name, registry.steps.names())} "
                              f"Steps: {', '.join(registry.steps.names())}; your own: register one with @textsift.workflow.step.") from None
        params = {k: v for k, v in body.items() if k != "type"}
        definition.check_names(list(params), where)
        refs: dict[str, Ref] = {}
        values: dict[str, Any] = {}
        for key, value in params.items():
            if _is_ref(value):
                target = str(value["ref"])
                step, *attr = target.split(".")
                refs[key] = Ref(step, attr)
            elif _find_nested_ref(value):
                raise ConfigError(f"{where}.{key}: a {{ref: ...}} must be a whole setting, not inside one.")
            else:
                values[key] = value
        settings = definition.validate(values, where)
        settings = {k: _absolute_paths(v, self.base_dir) for k, v in settings.items()}
        return StepNode(name, type_name, definition, settings, refs, body)

    def _topological_order(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, chain: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = chain[chain.index(name):] + [name]
                raise ConfigError(f"{self.path}: the steps refer to each other in a cycle: {' -> '.join(cycle)}.")
            state[name] = 1
            for ref in self.nodes[name].refs.values():
                visit(ref.step, chain + [name])
            state[name] = 2
            order.append(name)

        for name in self.nodes:
            visit(name, [])
        return order

    def needed(self, targets: list[str] | None) -> list[str]:
        """The steps to run for ``targets`` (all when None), dependencies first."""
        if not targets:
            return list(self.order)
        for t in targets:
            if t not in self.nodes:
                raise ConfigError(f"--step {t}: no such step in {self.path}.{did_you_mean(t, self.nodes)} Steps: {', '.join(self.nodes)}.")
        keep: set[str] = set()
        stack = list(targets)
        while stack:
            name = stack.pop()
            if name not in keep:
                keep.add(name)
                stack.extend(r.step for r in self.nodes[name].refs.values())
        return [n for n in self.order if n in keep]

    # --- fingerprints -----------------------------------------------------------------------

    def plan(self, names: list[str] | None = None) -> dict[str, Plan]:
        plans: dict[str, Plan] = {}
        for name in self.order:
            node = self.nodes[name]
            record = {
                "step": name,
                "type": node.type,
                "settings": canonical(node.settings, self.base_dir),
                "inputs": {p: {"ref": str(r), "fingerprint": plans[r.step].fingerprint} for p, r in sorted(node.refs.items())},
                "code": code_fingerprints(node.definition.code_objects(node.settings)),
                "textsift": textsift_version(),
            }
            fingerprint = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:24]
            cached, reason = False, ""
            if node.definition.cache and self.cache.has(fingerprint):
                reason = self._changed_outside(node, fingerprint)
                cached = not reason
            if not cached and not reason:
                reason = self._reason(node, record, plans)
            plans[name] = Plan(fingerprint, record, cached, reason)
        return plans if names is None else {n: plans[n] for n in names}

    def _cached(self, node: StepNode, fingerprint: str) -> bool:
        """Whether the step's entry exists and may be served: what it wrote outside the cache is as recorded."""
        return node.definition.cache and self.cache.has(fingerprint) and not self._changed_outside(node, fingerprint)

    def _changed_outside(self, node: StepNode, fingerprint: str) -> str:
        """Why the entry cannot be served because of what its step wrote outside the cache; '' when it can."""
        entry = self.cache.entry(fingerprint)
        for path, digest in results.externals(entry).items():
            if content_digest(Path(path)) != digest:
                return f"its result outside the cache ({path}) is gone or changed"
        if node.definition.verify is not None:
            try:
                good = bool(node.definition.verify(results.load(entry)))
            except Exception as exc:  # noqa: BLE001 - a result that cannot be checked is recomputed, and the reason says why
                return f"its result outside the cache is gone or changed (the step's verify check raised {type(exc).__name__}: {exc})"
            if not good:
                return "its result outside the cache is gone or changed (the step's verify check failed)"
        return ""

    def _write_state(self, step: str, record: dict[str, Any], external: dict[str, str]) -> None:
        """The step's last fingerprint record, and the paths outside the cache its result has there."""
        atomic_write_text(self._state_file(step), json.dumps({**record, "external": external}, indent=1, sort_keys=True))

    def _wrote_before(self, step: str, fingerprint: str) -> frozenset[str]:
        """Paths outside the cache that this step wrote in earlier runs (by its state, and by the entry it is about to replace)."""
        paths: set[str] = set()
        state = self._state_file(step)
        if state.is_file():
            paths.update(json.loads(state.read_text(encoding="utf-8")).get("external", {}))
        if self.cache.has(fingerprint):
            paths.update(results.externals(self.cache.entry(fingerprint)))
        return frozenset(paths)

    def _state_file(self, step: str) -> Path:
        return self.home / "state" / self.path.stem / f"{step}.json"

    def _reason(self, node: StepNode, record: dict[str, Any], plans: dict[str, Plan]) -> str:
        if not node.definition.cache:
            return "not cached: runs every time"
        state = self._state_file(node.name)
        if not state.is_file():
            return "never computed"
        old = json.loads(state.read_text(encoding="utf-8"))
        why = []
        if old.get("type") != record["type"]:
            why.append(f"type {old.get('type')} -> {record['type']}")
        changed = sorted(k for k in set(old.get("settings", {})) | set(record["settings"])
                         if old.get("settings", {}).get(k) != record["settings"].get(k))
        if changed:
            why.append(f"settings changed: {', '.join(changed)}")
        inputs = sorted(p for p in set(old.get("inputs", {})) | set(record["inputs"])
                        if (old.get("inputs", {}).get(p) or {}).get("fingerprint") != (record["inputs"].get(p) or {}).get("fingerprint"))
        if inputs:
            why.append("input changed: " + ", ".join(f"{p} ({record['inputs'][p]['ref']})" if p in record["inputs"] else p for p in inputs))
        code = sorted(k for k in set(old.get("code", {})) | set(record["code"]) if old.get("code", {}).get(k) != record["code"].get(k))
        if code:
            shown = ", ".join(code[:4]) + (f" and {len(code) - 4} more" if len(code) > 4 else "")
            why.append(f"source changed: {shown}")
        if old.get("textsift") != record["textsift"]:
            why.append(f"textsift {old.get('textsift')} -> {record['textsift']}")
        return "; ".join(why) or "cache entry missing (deleted?)"

    # --- running ----------------------------------------------------------------------------

    def run(
        self, execution_id: str, *, steps: list[str] | None = None, force: list[str] | None = None, resume: bool = False,
        tracker: Any = None,
    ) -> Execution:
        from textsift.tracking import JsonlTracker, MultiTracker, flatten

        force = list(force or [])
        for f in force:
            if f not in self.nodes:
                raise ConfigError(f"--force {f}: no such step.{did_you_mean(f, self.nodes)} Steps: {', '.join(self.nodes)}.")
        names = self.needed(steps + force if steps else None)
        directory = self.home / "executions" / execution_id
        record_file = directory / "execution.json"
        if record_file.exists() and not resume:
            raise CheckpointError(
                f"Execution '{execution_id}' already exists ({record_file}). Pass --resume to continue it, or use another --execution-id."
            )
        directory.mkdir(parents=True, exist_ok=True)
        plans = self.plan()
        execution = Execution(execution_id, directory)
        record: dict[str, Any] = json.loads(record_file.read_text(encoding="utf-8")) if record_file.exists() else {}
        record.update({
            "execution_id": execution_id, "workflow": str(self.path.resolve()), "resolved": self.raw,
            "started": record.get("started", time.strftime("%Y-%m-%dT%H:%M:%S%z")), "status": "running",
            "git": _git(self.base_dir), "versions": _versions(), "host": _host(),
            "seeds": {n: s for n in names for s in [_seeds(self.nodes[n].settings)] if s},
            "fingerprints": {n: plans[n].fingerprint for n in names},
            "steps": record.get("steps", {}),
        })
        record.setdefault("runs", 0)
        record["runs"] += 1
        atomic_write_text(record_file, json.dumps(record, indent=1, default=str))

        trackers = [JsonlTracker(directory / "tracking.jsonl")] + (tracker if isinstance(tracker, list) else self.trackers())
        track = MultiTracker(trackers)
        track.start_execution(execution_id, flatten({"workflow": self.path.name, "steps": {n: self.nodes[n].raw for n in names}}),
                              {"textsift.workflow": str(self.path.resolve()), "git.commit": str(record["git"].get("commit"))})
        status = "failed"
        try:
            for name in names:
                run = self._run_step(name, plans[name], execution, track, name in force)
                execution.steps[name] = run
                record["steps"][name] = run.__dict__
                record["tracking_failures"] = track.failed
                atomic_write_text(record_file, json.dumps(record, indent=1, default=str))
            status = "finished"
        except KeyboardInterrupt:
            status = "killed"
            raise
        finally:
            record["status"] = status
            record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            record["tracking_failures"] = track.failed
            atomic_write_text(record_file, json.dumps(record, indent=1, default=str))
            track.end_execution(status)
        return execution

    def trackers(self) -> list[Any]:
        out: list[Any] = []
        settings = self.spec.tracking
        if settings.mlflow is not None:
            try:
                from textsift.tracking.mlflow import MlflowTracker, default_artifacts, default_uri

                uri = settings.mlflow.tracking_uri or default_uri(self.home)
                artifacts = default_artifacts(self.home) if settings.mlflow.tracking_uri is None else None
                out.append(MlflowTracker(uri, settings.mlflow.experiment or self.path.stem, artifacts,
                                         log_artifacts=settings.mlflow.log_artifacts))
            except ImportError:
                logger.warning("tracking.mlflow is on but MLflow is not installed (pip install 'textsift[tracking]'); going on without it.")
        if settings.tensorboard is not None:
            try:
                from textsift.tracking.tensorboard import TensorBoardTracker

                out.append(TensorBoardTracker(Path(settings.tensorboard.log_dir or self.home / "tensorboard")))
            except ImportError:
                logger.warning("tracking.tensorboard is on but tensorboard is not installed; going on without it.")
        return out

    def _inputs(self, node: StepNode, execution: Execution) -> dict[str, Any]:
        values = dict(node.settings)
        for param, ref in node.refs.items():
            value = execution.results[ref.step]
            for part in ref.path:
                if isinstance(value, dict) and part in value:
                    value = value[part]
                elif hasattr(value, part):
                    value = getattr(value, part)
                else:
                    options = list(value) if isinstance(value, dict) else [a for a in dir(value) if not a.startswith("_")]
                    raise ConfigError(
                        f"{self.path}: steps.{node.name}.{param}: {{ref: '{ref}'}}: the result of '{ref.step}' has no '{part}'."
                        f"{did_you_mean(part, options)}"
                    )
            values[param] = value
        checked = node.definition.validate({p: values[p] for p in node.refs}, f"{self.path}: steps.{node.name}")
        values.update(checked)
        return values

    def _run_step(self, name: str, plan: Plan, execution: Execution, track: Any, force: bool) -> StepRun:
        from textsift.tracking import TrackingCallback, flatten

        node = self.nodes[name]
        t0 = time.perf_counter()
        tags = {"textsift.fingerprint": plan.fingerprint, "textsift.step_type": node.type}
        if not force and self._cached(node, plan.fingerprint):
            return self._hit(name, plan, execution, track, tags, t0)
        inputs = self._inputs(node, execution)
        if not node.definition.cache:
            import tempfile

            track.start_step(name, flatten(plan.record["settings"]), {**tags, "textsift.cache": "off"})
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    value = node.definition.call(inputs, Path(tmp), StepContext(name, track, None, self.base_dir))
                    if isinstance(value, results.Artifact):
                        raise ConfigError(f"Step '{name}' is not cached, so it cannot return files under output_dir.")
            except BaseException:
                track.end_step("failed")
                raise
            execution.results[name] = value
            track.log_metrics(results.metrics_of(value))
            track.end_step("finished")
            return StepRun(name, plan.fingerprint, False, time.perf_counter() - t0, None)
        with self.cache.lock(plan.fingerprint):
            if not force and self._cached(node, plan.fingerprint):  # another process computed it while we waited
                return self._hit(name, plan, execution, track, tags, t0)
            work = self.cache.work_dir(plan.fingerprint)
            if force or self.cache.has(plan.fingerprint):  # forced, or its entry failed verification
                import shutil

                shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True, exist_ok=True)
            logger.info("Step %s (%s): computing [%s]", name, node.type, plan.reason or "forced")
            track.start_step(name, flatten(plan.record["settings"]), {**tags, "textsift.cache_hit": "false"})
            context = StepContext(name, track, TrackingCallback, self.base_dir, output_dir=work,
                                  wrote=self._wrote_before(name, plan.fingerprint))
            try:
                with _entry_paths_in_logs(self.cache.relocations(plan.fingerprint)):
                    value = node.definition.call(inputs, work, context)
                    external = _digests(name, context.externals)
                    results.store(value, work, name, external)
                    entry = self.cache.commit(plan.fingerprint, plan.record)
            except BaseException:
                track.end_step("failed")
                raise  # the work directory stays for a resume; no entry was made
            self._write_state(name, plan.record, external)
            value = results.load(entry)
            execution.results[name] = value
            self._track_result(track, value)
            track.end_step("finished")
        seconds = time.perf_counter() - t0
        logger.info("Step %s: done in %.1f s", name, seconds)
        return StepRun(name, plan.fingerprint, False, seconds, str(entry))

    def _hit(self, name: str, plan: Plan, execution: Execution, track: Any, tags: dict[str, str], t0: float) -> StepRun:
        from textsift.tracking import flatten

        entry = self.cache.entry(plan.fingerprint)
        value = results.load(entry)
        execution.results[name] = value
        self._write_state(name, plan.record, results.externals(entry))
        track.start_step(name, flatten(plan.record["settings"]), {**tags, "textsift.cache_hit": "true"})
        track.log_metrics(results.metrics_of(value))
        track.end_step("finished")
        logger.info("Step %s (%s): cached", name, self.nodes[name].type)
        return StepRun(name, plan.fingerprint, True, time.perf_counter() - t0, str(entry))

    def _track_result(self, track: Any, value: Any) -> None:
        track.log_metrics(results.metrics_of(value))
        if isinstance(value, results.ModelArtifact):
            track.log_artifacts(value.model_dir, "model")
            if value.report_dir.is_dir():
                track.log_artifacts(value.report_dir, "report")
        elif isinstance(value, results.ReportArtifact):
            track.log_artifacts(value.path, "report")


@dataclass
class StepContext:
    """What a running step may use besides its settings: its name, the tracker, and a way to declare
    what it writes outside its output_dir."""

    name: str
    tracker: Any
    callback_class: Any = None
    base_dir: Path = Path(".")  # the workflow file's directory: relative paths start here
    output_dir: Path | None = None  # the step's work directory, which becomes its cache entry (None: not cached)
    wrote: frozenset[str] = frozenset()  # paths outside the cache this step wrote in earlier runs
    externals: list[Path] = field(default_factory=list)  # declared with external(), in order

    def trainer_callbacks(self, every_steps: int = 50) -> list[Any]:
        return [self.callback_class(self.tracker, every_steps)] if self.callback_class is not None else []

    def external(self, path: str | Path) -> Path:
        """Declare that the step writes ``path`` (a file or folder; relative to the workflow file's folder)
        outside its output_dir, and get it back absolute.

        When the step finishes, the runner records the content digest of ``path`` in the cache entry; a
        later cache hit is served only while ``path`` still has that content, and otherwise the step runs again.
        """
        resolved = (Path(self.base_dir) / path).resolve()
        if self.output_dir is not None:
            inside = Path(self.output_dir).resolve()
            if resolved == inside or inside in resolved.parents or resolved in inside.parents:
                raise ConfigError(
                    f"Step '{self.name}': context.external({str(path)!r}) is {resolved}, which overlaps its output_dir {inside}. "
                    "Files under output_dir are cached already: declare only paths outside it."
                )
        if resolved not in self.externals:
            self.externals.append(resolved)
        return resolved

    def wrote_before(self, path: str | Path) -> bool:
        """Whether this step wrote ``path`` (as declared with :meth:`external`) in an earlier run."""
        return str((Path(self.base_dir) / path).resolve()) in self.wrote


def _digests(step: str, paths: list[Path]) -> dict[str, str]:
    """The content digest of each path a finished step declared with ``context.external``."""
    out: dict[str, str] = {}
    for path in paths:
        digest = content_digest(path)
        if digest is None:
            raise ConfigError(
                f"Step '{step}' declared {path} with context.external(), but nothing is there now that it has finished: "
                "write it before returning, or do not declare it."
            )
        out[str(path)] = digest
    return out


class _EntryPaths(logging.Filter):
    """Shows paths in a step's work directory, in log messages, as the cache-entry paths they become."""

    def __init__(self, relocations: dict[str, str]) -> None:
        super().__init__()
        self.relocations = relocations
        self.pattern = re.compile("|".join(re.escape(old) for old in sorted(relocations, key=len, reverse=True)))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed logging call: the handler reports it when it formats the record
            return True
        relocated = self.pattern.sub(lambda m: self.relocations[m.group(0)], message)
        if relocated != message:
            record.msg, record.args = relocated, None
        return True


@contextmanager
def _entry_paths_in_logs(relocations: dict[str, str]) -> Iterator[None]:
    """For a step's duration, log records of textsift reach every handler with the entry path in place of the work path."""
    if not relocations:
        yield
        return
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logging.getLogger("textsift")
    while current is not None:  # the handlers a textsift record reaches, as Logger.callHandlers walks them
        handlers.extend(current.handlers)
        current = current.parent if current.propagate else None
    path_filter = _EntryPaths(relocations)
    for handler in handlers:
        handler.addFilter(path_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(path_filter)


def _step_names() -> list[str]:
    from textsift import registry

    return registry.steps.names()


def _seeds(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if k == "seed" and isinstance(v, int):
                out[key] = v
            else:
                out.update(_seeds(v, key))
    return out


def _git(directory: Path) -> dict[str, Any]:
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=directory, capture_output=True, text=True, timeout=5).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict[str, str]:
    from textsift.training.run import _versions as versions

    return versions()


def _host() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "user": user, "pid": os.getpid()}
