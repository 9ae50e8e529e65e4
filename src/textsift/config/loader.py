"""Reading configs: YAML or Jsonnet files, dotted overrides, model recommendations, validation.

Precedence, highest first: ``--set`` overrides, the config file, the chosen model's recommended
settings (``ModelSpec.recommended``), the schema's defaults.
"""

from __future__ import annotations

import copy
import importlib
import json
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from textsift import registry
from textsift.config.schema import Config
from textsift.config.spec import ComponentField
from textsift.errors import ConfigError, RegistryError, did_you_mean

_BUILTINS_LOADED = False


def load_builtins() -> None:
    """Import the modules that register textsift's own components (explicitly, once)."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        importlib.import_module("textsift.components")
        _BUILTINS_LOADED = True


def read_config_file(path: str | Path, ext_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """Read a YAML (anchors and aliases work), JSON or Jsonnet file into a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonnet", ".libsonnet"):
            import _jsonnet

            data = json.loads(_jsonnet.evaluate_file(str(path), ext_vars=ext_vars or {}))
        else:
            with path.open(encoding="utf-8") as f:
                data = yaml.safe_load(f)
    except RuntimeError as exc:  # jsonnet reports syntax errors as RuntimeError
        raise ConfigError(f"Cannot evaluate Jsonnet file '{path}': {str(exc).strip().splitlines()[0]}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"Cannot parse YAML file '{path}'{where}: {getattr(exc, 'problem', exc)}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file '{path}' is not UTF-8 text ({exc.reason}).") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping of settings, found a {type(data).__name__}.")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.optimizer.lr=3e-4"`` -> (["trainer", "optimizer", "lr"], 0.0003)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Override '{text}' must look like 'dotted.path=value' (e.g. trainer.epochs=5).")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), _number(parsed)


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; anyone writing it means the number."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = raw
        for i, key in enumerate(keys[:-1]):
            if isinstance(node, list):
                node = node[int(key)]
                continue
            nxt = node.get(key)
            if not isinstance(nxt, (dict, list)):
                # a component given as a bare name (`scheduler: cosine`) becomes a mapping
                nxt = {"type": nxt} if isinstance(nxt, str) and i < len(keys) - 1 else {}
                node[key] = nxt
            node = nxt
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value
    return raw


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Merge ``top`` over ``base``. A component mapping whose ``type`` differs replaces the base one."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, str) and "type" in old:
            value = {"type": value}
        if (
            isinstance(old, dict)
            and isinstance(value, dict)
            and ("type" not in value or "type" not in old or value["type"] == old["type"])
        ):
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> None:
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    for split in ("train", "validation", "test"):
        value = data.get(split)
        if isinstance(value, str) and value.strip() and not Path(value).is_absolute():
            candidate = base_dir / value
            data[split] = str(candidate.resolve()) if candidate.exists() or not Path(value).exists() else str(Path(value).resolve())


def _model_class(raw: dict[str, Any]) -> Any:
    model = raw.get("model", {"type": "bag"})
    name = model if isinstance(model, str) else (model.get("type", "bag") if isinstance(model, dict) else None)
    if not isinstance(name, str):
        return None
    try:
        return registry.models.get(name)
    except RegistryError:
        return None  # reported by validation, with its dotted path


def _model_recommendations(raw: dict[str, Any]) -> dict[str, Any]:
    cls = _model_class(raw)
    return copy.deepcopy(getattr(cls, "recommended", {}) or {}) if cls is not None else {}


def resolve(raw: dict[str, Any], *, source: str = "config", overridden: dict[str, str] | None = None) -> Config:
    """Validate a raw mapping (file + overrides already applied) into a complete :class:`Config`."""
    load_builtins()
    for module in raw.get("imports", []) or []:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"imports: cannot import '{module}' ({exc}). Install it or fix the module name.") from None
    merged = deep_merge(_model_recommendations(raw), raw)
    model_cls = _model_class(merged)
    if model_cls is not None and hasattr(model_cls, "fill_config"):
        merged = model_cls.fill_config(merged)
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, merged, source, overridden)) from None


def read_raw_config(path: str | Path) -> dict[str, Any]:
    """A config file's settings, not yet validated; its data file paths made absolute (relative to the file)."""
    raw = read_config_file(path)
    _resolve_paths(raw, Path(path).resolve().parent)
    return raw


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Load, override and validate a config. ``base`` (e.g. from CLI flags) sits under the file."""
    raw: dict[str, Any] = copy.deepcopy(base or {})
    source = "command line"
    if path is not None:
        raw = deep_merge(raw, read_raw_config(path))
        source = str(path)
    raw = apply_overrides(raw, overrides or [])
    # an error in a setting an override gave names the override, not the file
    overridden = {".".join(parse_override(text)[0]): f"--set {text}" for text in overrides or []}
    return resolve(raw, source=source, overridden=overridden)


def config_to_dict(config: Config) -> dict[str, Any]:
    return config.model_dump(mode="json")


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)


# --- error messages ---------------------------------------------------------------------------


def _dotted(loc: tuple[Any, ...], raw: Any) -> tuple[str, list[Any]]:
    """Drop the union tags pydantic puts in a location; return the dotted path and the real keys."""
    keys: list[Any] = []
    node = raw
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str) and part not in node and not last:
            continue  # a tag (component type name), not a key
        keys.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    text = ""
    for k in keys:
        text += f"[{k}]" if isinstance(k, int) else (f".{k}" if text else str(k))
    return text, keys


def _component_class(field: Any, value: Any) -> type[BaseModel] | None:
    metadata = list(getattr(field, "metadata", []))
    annotation = getattr(field, "annotation", field)
    for arg in typing.get_args(annotation):  # list[Annotated[...]] or Optional[...]
        if typing.get_origin(arg) is typing.Annotated:
            metadata += list(arg.__metadata__)
    for marker in metadata:
        if isinstance(marker, ComponentField):
            if isinstance(value, str):
                return None
            name = value.get("type", marker.default) if isinstance(value, dict) else marker.default
            try:
                return marker.registry.get(name)  # type: ignore[no-any-return]
            except RegistryError:
                return None
    candidates = [annotation, *typing.get_args(annotation)]
    for cand in candidates:
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def _fields_at(keys: list[Any], raw: Any) -> list[str]:
    cls: type[BaseModel] | None = Config
    node = raw
    for key in keys:
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and key < len(node) else None
            continue
        if cls is None or key not in cls.model_fields:
            return []
        node = node.get(key) if isinstance(node, dict) else None
        cls = _component_class(cls.model_fields[key], node)
    return list(cls.model_fields) if cls is not None else []


def format_validation_error(exc: ValidationError, raw: dict[str, Any], source: str, overridden: dict[str, str] | None = None) -> str:
    lines = []
    default_source = source
    for err in exc.errors(include_url=False):
        path, keys = _dotted(tuple(err["loc"]), raw)
        source = next((where for key, where in (overridden or {}).items() if path == key or path.startswith(key + ".")),
                      default_source)
        kind = err["type"]
        if kind == "extra_forbidden":
            options = [f for f in _fields_at(keys[:-1], raw) if f != "type"]
            hint = did_you_mean(str(keys[-1]), options)
            allowed = f" Allowed here: {', '.join(options)}." if options else ""
            lines.append(f"{source}: unknown setting '{path}'.{hint}{allowed}")
        elif kind == "missing":
            lines.append(f"{source}: missing required setting '{path}'.")
        elif kind == "unknown_component":
            lines.append(f"{source}: {path}: {err['msg']}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            shown = _found(err.get("input"))
            lines.append(f"{source}: {path or 'config'}: {msg}{shown}.")
    return "\n".join(lines)


def _found(value: Any) -> str:
    """The wrong value as an error shows it: a short repr of a scalar, else only its type (never a whole DataFrame)."""
    if isinstance(value, (dict, list)):
        return ""
    if value is None or isinstance(value, (str, int, float, bool)):
        text = repr(value)
        return f" (found {text if len(text) <= 80 else text[:77] + '...'})"
    return f" (found a {type(value).__name__})"
