"""Named registries of components.

A component is registered where it is defined, with a decorator::

    @models.register("bag")
    class BagModel(ModelSpec): ...

and picked in a config with ``type: bag``. A component of the user's own plugs in without editing
textsift, in either of two ways:

* ``type: "my_package.my_module:MyModel"`` - an import path, imported on first use;
* a package entry point in the group ``textsift.<kind>s`` (for example ``textsift.models``), whose
  name is the ``type`` and whose value is the import path.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from textsift.errors import RegistryError, unknown_name

T = TypeVar("T")


def import_path(path: str) -> object:
    """Import ``"package.module:attribute"`` (or ``package.module.attribute``)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise RegistryError(f"'{path}' is not an import path; write it as 'package.module:Name'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(
            f"Cannot import module '{module_name}' (from '{path}'): {exc}. "
            "Install the package that provides it, or fix the path."
        ) from exc
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise RegistryError(f"Module '{module_name}' has no attribute '{attr}' (from '{path}').") from None
    return obj


def is_import_path(name: str) -> bool:
    return ":" in name


class Registry(Generic[T]):
    """A mapping from names to components of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entry_point_group = f"textsift.{kind}s"
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise RegistryError(f"The {self.kind} name '{name}' is already registered to {existing!r}.")
            self._items[name] = obj
            return obj

        return decorator

    def _load_entry_points(self) -> None:
        """Add components that installed packages declare (scanned again on every miss: cheap, and
        a package installed while the process runs is found)."""
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()

    def get(self, name: str) -> T:
        """Return the component called ``name``: registered, from an entry point, or an import path."""
        if name in self._items:
            return self._items[name]
        if is_import_path(name):
            return import_path(name)  # type: ignore[return-value]  (callers register it once checked)
        self._load_entry_points()
        if name in self._items:
            return self._items[name]
        raise unknown_name(
            self.kind, name, self._items,
            fix="A component of your own can be named by import path: 'package.module:Name'.",
        )

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))


# The registries. Modules that define components import these and register into them.
models: Registry = Registry("model")
tokenizers: Registry = Registry("tokenizer")
readers: Registry = Registry("reader")
datasets: Registry = Registry("dataset")
losses: Registry = Registry("loss")
schedulers: Registry = Registry("scheduler")
callbacks: Registry = Registry("callback")
steps: Registry = Registry("step")
