"""The base of every configurable component, and config fields that pick a registered component.

A registered component is a pydantic model whose typed fields *are* its settings (unknown keys are
rejected), and whose ``type`` names it. A field declared as ``Component[...]`` accepts
``{type: NAME, ...settings}`` and validates the settings against the class registered as ``NAME``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, TypeAdapter
from pydantic_core import PydanticCustomError, core_schema

from textsift.errors import RegistryError
from textsift.registry import Registry


class Spec(BaseModel):
    """Settings of a component: typed, validated, unknown keys rejected, immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    type: str


class Section(BaseModel):
    """A config section that is not a registered component."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def _tag_of(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("type")
    return getattr(value, "type", None)


_ADAPTERS: dict[tuple[str, tuple[tuple[str, int], ...]], TypeAdapter] = {}


def _union_adapter(registry: Registry) -> TypeAdapter:
    key = (registry.kind, tuple((name, id(cls)) for name, cls in registry.items()))
    if key not in _ADAPTERS:
        _ADAPTERS[key] = _build_union_adapter(registry)
    return _ADAPTERS[key]


def _build_union_adapter(registry: Registry) -> TypeAdapter:
    members = tuple(Annotated[cls, Tag(name)] for name, cls in registry.items())
    if len(members) == 1:
        members = members + members  # Union of one collapses; a repeated member keeps the tagged union
    return TypeAdapter(Annotated[Union[members], Discriminator(_tag_of)])  # type: ignore[valid-type]


class ComponentField:
    """Pydantic marker: validate a value as one of the components registered in ``registry``."""

    def __init__(self, registry: Registry, default: str | None = None) -> None:
        self.registry = registry
        self.default = default

    def _validate(self, value: Any) -> Any:
        if isinstance(value, Spec):
            return value
        if isinstance(value, str):  # shorthand: `scheduler: cosine`
            value = {"type": value}
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "component_type", "expected a mapping like {example}, got {got}",
                {"got": type(value).__name__, "example": "{type: NAME, ...settings}"},
            )
        if "type" not in value:
            if self.default is None:
                raise PydanticCustomError("component_type", "missing required key 'type'")
            value = {"type": self.default, **value}
        name = value["type"]
        try:
            cls = self.registry.get(name)
        except RegistryError as exc:
            raise PydanticCustomError("unknown_component", str(exc).replace("{", "{{").replace("}", "}}")) from None
        if not (isinstance(cls, type) and issubclass(cls, Spec)):
            raise PydanticCustomError(
                "unknown_component", f"'{name}' is not a textsift {self.registry.kind} (a Spec subclass)"
            )
        if name not in self.registry.names():
            self.registry.register(name)(cls)
        return _union_adapter(self.registry).validate_python(value)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda v: v.model_dump(mode="json") if isinstance(v, BaseModel) else v, when_used="always"
            ),
        )

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        return handler(_union_adapter(self.registry).core_schema)


def Component(registry: Registry, default: str | None = None) -> Any:  # noqa: N802 - reads as a type
    """``Component(models, "bag")``: the annotation of a field holding a registered component."""
    return Annotated[Spec, ComponentField(registry, default)]
