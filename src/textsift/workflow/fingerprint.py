"""Fingerprints of code: the normalized source of functions and classes, and of what they use.

Normalized source is the AST without docstrings, line numbers or formatting, so editing a comment,
a docstring or the layout leaves the fingerprint alone while any change to what the code does moves
it. "What they use" is followed statically: every global name (or ``module.attribute`` chain) in the
code that resolves to a function or class of *project code* (textsift itself, or the user's modules,
anything outside site-packages and the standard library) is fingerprinted too, transitively, along
with base classes. Installed third-party packages are covered by their versions instead.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.metadata
import inspect
import sys
import sysconfig
import types
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

_LIBRARY_ROOTS = tuple(
    str(Path(p).resolve()) for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def _module_file(module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    return str(Path(file).resolve()) if file else None


def is_project_code(obj: Any) -> bool:
    """textsift's own code and the user's modules; not the standard library or installed packages."""
    module_name = getattr(obj, "__module__", None)
    if not module_name or module_name in ("builtins", "__main__"):
        return False
    if module_name == "textsift" or module_name.startswith("textsift."):
        return True
    file = _module_file(module_name)
    return bool(file) and file.endswith(".py") and not file.startswith(_LIBRARY_ROOTS)


@lru_cache(maxsize=None)
def _module_ast(file: str, mtime_ns: int) -> ast.Module:
    return ast.parse(Path(file).read_text(encoding="utf-8"))


def _find(tree: ast.AST, qualname: str) -> ast.AST | None:
    node: ast.AST = tree
    for part in qualname.split("."):
        if part == "<locals>":
            return None
        found = None
        for child in getattr(node, "body", []):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and child.name == part:
                found = child  # the last definition wins, as at run time
        if found is None:
            return None
        node = found
    return node


class _StripDocstrings(ast.NodeTransformer):
    def _strip(self, node: Any) -> Any:
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


def normalized_source(node: ast.AST) -> str:
    import copy

    return ast.dump(_StripDocstrings().visit(copy.deepcopy(node)), annotate_fields=False, include_attributes=False)


def _referenced_names(node: ast.AST) -> list[list[str]]:
    """Global name chains used in ``node``: ``foo`` -> ['foo'], ``mod.sub.fn`` -> ['mod', 'sub', 'fn']."""
    chains = []
    for child in ast.walk(node):
        if isinstance(child, ast.Attribute):
            parts = []
            cur: ast.AST = child
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                chains.append([cur.id, *reversed(parts)])
        elif isinstance(child, ast.Name):
            chains.append([child.id])
    return chains


def _resolve(chain: list[str], namespace: dict[str, Any]) -> Any:
    if chain[0] not in namespace:
        return None
    obj = namespace[chain[0]]
    for part in chain[1:]:
        if not isinstance(obj, types.ModuleType):
            break
        found = getattr(obj, part, None)
        if found is None:
            found = _module(f"{obj.__name__}.{part}")
        obj = found
    return obj


_CONSTANTS = (int, float, str, bytes, bool, tuple, frozenset)


def _local_imports(node: ast.AST) -> dict[str, Any]:
    """Names bound by ``from x import y`` / ``import x`` inside a function body (already imported modules only)."""
    names: dict[str, Any] = {}
    for child in ast.walk(node):
        if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
            module = _module(child.module)
            for alias in child.names:
                value = getattr(module, alias.name, None) if module is not None else None
                if value is None:
                    value = _module(f"{child.module}.{alias.name}")
                if value is not None:
                    names[alias.asname or alias.name] = value
        elif isinstance(child, ast.Import):
            for alias in child.names:
                module = _module(alias.name)
                if module is not None:
                    names[alias.asname or alias.name.split(".")[0]] = module if alias.asname else sys.modules.get(alias.name.split(".")[0])
    return names


def _module(name: str) -> types.ModuleType | None:
    """The module if imported; textsift's own modules are imported here, so that what a function
    imports lazily is followed whether or not it has run yet (fingerprints must not depend on that)."""
    if name in sys.modules:
        return sys.modules[name]
    if name == "textsift" or name.startswith("textsift."):
        try:
            return importlib.import_module(name)
        except ImportError:
            return None
    return None


def _unwrap(obj: Any) -> Any:
    while hasattr(obj, "__wrapped__"):
        obj = obj.__wrapped__
    return obj


def key_of(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def code_fingerprints(objects: Iterable[Any]) -> dict[str, str]:
    """``{"module:QualName": sha256 of normalized source}`` for ``objects`` and the project code they use."""
    out: dict[str, str] = {}
    queue = [_unwrap(o) for o in objects]
    while queue:
        obj = _unwrap(queue.pop())
        if not (inspect.isclass(obj) or inspect.isfunction(obj)) or not is_project_code(obj):
            continue
        key = key_of(obj)
        if key in out:
            continue
        module = sys.modules.get(obj.__module__)
        file = _module_file(obj.__module__)
        node = None
        if file is not None and file.endswith(".py"):
            node = _find(_module_ast(file, Path(file).stat().st_mtime_ns), obj.__qualname__)
        if node is None:  # defined in a function or generated: fall back to its source text
            try:
                node = ast.parse(inspect.cleandoc(inspect.getsource(obj)))
            except (OSError, TypeError, SyntaxError):
                out[key] = "unavailable"
                continue
        out[key] = hashlib.sha256(normalized_source(node).encode()).hexdigest()[:16]
        namespace = dict(vars(module)) if module is not None else {}
        namespace.update(_local_imports(node))
        for chain in _referenced_names(node):
            target = _resolve(chain, namespace)
            if isinstance(target, _CONSTANTS) and len(chain) <= 2 and chain[-1].isupper() and not chain[-1].startswith("_"):
                # a module-level constant the code reads (WORD_BUCKETS = 2 ** 24): its value counts
                owner = obj.__module__ if len(chain) == 1 else getattr(namespace[chain[0]], "__name__", chain[0])
                if owner == "textsift" or owner.startswith("textsift.") or len(chain) == 1:
                    out.setdefault(f"{owner}:{chain[-1]}", hashlib.sha256(repr(target).encode()).hexdigest()[:16])
            elif target is not None:
                queue.append(target)
        if inspect.isclass(obj):
            queue.extend(b for b in obj.__mro__[1:] if b is not object)
    return dict(sorted(out.items()))


def textsift_version() -> str:
    try:
        return importlib.metadata.version("textsift")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        from textsift import __version__

        return __version__
