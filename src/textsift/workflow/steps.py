"""Steps: functions registered by name, whose keyword arguments are the step's settings.

::

    from textsift.workflow import step

    @step("shout")
    def shout(data: Dataset, suffix: str = "!") -> Dataset:
        return Dataset(data.name + suffix, [replace(ex, text=ex.text.upper() + suffix) for ex in data.examples])

and in a workflow file ``loud: {type: shout, data: {ref: train_data}}``. A parameter named
``output_dir`` receives an empty directory for files the step writes (return an :class:`Artifact`
under it). The arguments are validated against the signature's type hints before anything runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
import dataclasses
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, InstanceOf, TypeAdapter, ValidationError

from textsift import registry
from textsift.errors import ConfigError
from textsift.workflow.fingerprint import is_project_code

RESERVED = ("output_dir", "context")


@dataclass
class StepDef:
    name: str
    func: Callable[..., Any]
    cache: bool = True  # False: runs every time
    description: str = ""
    verify: Callable[[Any], bool] | None = None  # is a cached result still good? (paths outside the cache: context.external)

    def __post_init__(self) -> None:
        self.signature = inspect.signature(self.func)
        hints = get_type_hints(self.func, include_extras=True)
        self.adapters: dict[str, TypeAdapter[Any]] = {}
        self.required: list[str] = []
        for name, p in self.signature.parameters.items():
            if name in RESERVED:
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ConfigError(f"Step '{self.name}': *args / **kwargs are not allowed; name every setting.")
            self.adapters[name] = TypeAdapter(_instances(hints.get(name, Any)))
            if p.default is p.empty:
                self.required.append(name)

    @property
    def parameters(self) -> list[str]:
        return list(self.adapters)

    def check_names(self, given: list[str], where: str) -> None:
        from textsift.errors import did_you_mean

        for name in given:
            if name not in self.adapters:
                raise ConfigError(
                    f"{where}.{name}: '{self.name}' has no setting '{name}'.{did_you_mean(name, self.parameters)} "
                    f"Its settings: {', '.join(self.parameters) or '(none)'}."
                )
        missing = [n for n in self.required if n not in given]
        if missing:
            raise ConfigError(f"{where}: '{self.name}' needs {', '.join(repr(m) for m in missing)} (a value or a {{ref: STEP}}).")

    def validate(self, values: dict[str, Any], where: str) -> dict[str, Any]:
        """Validate the given settings one by one against the signature's type hints."""
        out = {}
        for name, value in values.items():
            try:
                out[name] = self.adapters[name].validate_python(value)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(x) for x in err["loc"] if not isinstance(x, int) or True)
                raise ConfigError(f"{where}.{name}{'.' + loc if loc else ''}: {err['msg']} (got {value!r:.80})") from None
        return out

    def code_objects(self, arguments: dict[str, Any]) -> list[Any]:
        """The step function and every project class among its (validated) arguments, e.g. a config's components."""
        objects: list[Any] = [self.func]
        _walk(arguments, objects)
        return objects

    def call(self, arguments: dict[str, Any], output_dir: Path, context: Any) -> Any:
        extra = {}
        if "output_dir" in self.signature.parameters:
            extra["output_dir"] = output_dir
        if "context" in self.signature.parameters:
            extra["context"] = context
        return self.func(**arguments, **extra)


def _instances(annotation: Any) -> Any:
    """Results (datasets, artifacts: dataclasses) are checked with isinstance, never rebuilt field by field."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return Union[tuple(_instances(a) for a in get_args(annotation))]  # type: ignore[return-value]
    if inspect.isclass(annotation) and dataclasses.is_dataclass(annotation):
        return InstanceOf[annotation]
    return annotation


def _walk(value: Any, out: list[Any]) -> None:
    if isinstance(value, BaseModel):
        if is_project_code(type(value)):
            out.append(type(value))
        for name in type(value).model_fields:
            _walk(getattr(value, name), out)
    elif isinstance(value, dict):
        for v in value.values():
            _walk(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk(v, out)


def step(
    name: str, *, cache: bool = True, verify: Callable[[Any], bool] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as a workflow step called ``name`` (``type: name`` in a workflow file).

    ``cache=False``: the step runs every time. ``verify(result)``: a cached result is used only if this
    says it is still good. A step that writes files outside its ``output_dir`` declares them with
    ``context.external(path)`` instead: the runner checks their content on every cache hit.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        registry.steps.register(name)(StepDef(name, func, cache, inspect.getdoc(func) or "", verify))
        return func

    return decorator


def get_step(name: str) -> StepDef:
    found = registry.steps.get(name)
    if isinstance(found, StepDef):
        return found
    if callable(found):  # an import path to a plain function
        return StepDef(name, found)
    raise ConfigError(f"Step type '{name}' is {type(found).__name__}, not a step function.")
