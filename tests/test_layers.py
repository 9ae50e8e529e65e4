"""The layers contract of ../shared/LAYOUT.md, checked over the import graph of src/textsift.

The graph is read from the source (``import``/``from ... import`` statements, and ``importlib.import_module`` with a
literal name; not those under ``if TYPE_CHECKING:``). A module *reaches* what it imports anywhere (at its top or in a
function) and, from there, whatever those modules import at their top, packages' ``__init__`` included: what
running it can load. Each rule lists the modules that break it today as named exceptions; the test fails both when a
new break appears and when a listed one is fixed (then strike it from the list).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "textsift"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.top: set[str] = set()
        self.lazy: set[str] = set()
        self.depth = 0

    def _add(self, name: str) -> None:
        (self.top if self.depth == 0 else self.lazy).add(name)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            base = base[: len(base) - node.level + (1 if self.is_package else 0)]
            name = ".".join(base + ([node.module] if node.module else []))
        else:
            name = node.module or ""
        self._add(name)
        for alias in node.names:  # ``from textsift.training import run`` imports the submodule
            self._add(f"{name}.{alias.name}")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr == "import_module" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            self._add(node.args[0].value)
        self.generic_visit(node)


@lru_cache(maxsize=1)
def graph() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """module -> (imported at its top, imported in functions): textsift modules that exist, and external roots."""
    files = {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    out = {}
    for module, path in files.items():
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))

        def resolve(names: set[str]) -> frozenset[str]:
            found = set()
            for name in names:
                if name == PACKAGE or name.startswith(PACKAGE + "."):
                    while name and name not in files:  # ``from pkg.mod import function``: the module pkg.mod
                        name = name.rpartition(".")[0]
                    if name:
                        found.add(name)
                else:
                    found.add(name.split(".")[0])
            return frozenset(found)

        out[module] = (resolve(visitor.top), resolve(visitor.lazy))
    return out


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def reach(module: str) -> set[str]:
    """Every module running ``module`` can load: its own imports (anywhere), then top-level imports onward."""
    g = graph()
    top, lazy = g[module]
    seen: set[str] = set()
    todo = [*top, *lazy, *_parents(module)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in g:
            todo += [*g[name][0], *_parents(name)]
    seen.discard(module)
    return seen


def _in(name: str, *layers: str) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in layers)


def modules(*layers: str) -> list[str]:
    return sorted(m for m in graph() if _in(m, *layers))


def broken(sources: list[str], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """For each source module: the forbidden modules it reaches (sources reaching none are left out)."""
    out = {}
    for m in sources:
        hits = sorted(x for x in reach(m) if _in(x, *forbidden))
        if hits:
            out[m] = hits
    return out


def direct(sources: list[str], forbidden: tuple[str, ...], g: dict | None = None) -> dict[str, list[str]]:
    """For each source module: the forbidden modules it imports itself (at its top or in a function); ``g``: the
    import graph to read (this package's by default)."""
    out = {}
    for m in sources:
        top, lazy = (g or graph())[m]
        hits = sorted(x for x in top | lazy if _in(x, *forbidden))
        if hits:
            out[m] = hits
    return out


INFERENCE = ("textsift.inference", "textsift.modeldir", "textsift.backends.onnx", "textsift.backends.flax.runtime",
             "textsift.backends.flax.forward", "textsift.backends.torch.runtime")
#: the backends' training code (the torch loop, optimizer, checkpoint format and DDP left training/ for
#: backends/torch): held to the rules that keep inference, config and evaluation off training/
BACKEND_TRAINING = (*(f"textsift.backends.torch.{m}" for m in ("trainer", "optim", "checkpoint", "distributed")),
                    "textsift.backends.flax.trainer", "textsift.backends.flax.optim")
TRAINING_SIDE = ("textsift.training", "textsift.tuning", "textsift.workflow", *BACKEND_TRAINING)

#: LAYOUT.md's rules broken today, by rule: the module, and why. Rules 1 (inference) and 3 (evaluation) hold now.
EXCEPTIONS: dict[str, dict[str, str]] = {
    # rule 2: config.loader's load_builtins imports textsift.components (importlib.import_module), which imports
    # training's callbacks, losses and schedulers and workflow.builtin to register them: config, training and workflow
    # still form one circle. Fix: registration outside config (LAYOUT.md's "registration in one place").
    "config_imports_training": {
        "textsift.config.loader": "load_builtins -> components -> training.callbacks/losses/schedulers, workflow.builtin",
    },
    # rule 5: the core imports a backend other than through the registry (the runtime table names them by string).
    "core_imports_a_backend": {
        "textsift.components": "the registration wiring: it imports the torch networks' modules, where the built-in "
                               "model specs (bag, linear, cnn, lstm/gru, transformer) register",
        "textsift.training.run": "the run chooses the backend: torch's Trainer and DDP helpers (backends.torch.trainer, "
                                 ".distributed), flax's by dispatching to backends.flax on config.backend (a Trainer "
                                 "registry would end this)",
        "textsift.training.optim": "the config name of SparseAdamW ('textsift.training.optim:SparseAdamW', in configs "
                                   "and saved model directories) resolves to backends.torch.optim's class",
        "textsift.compression.distill": "distillation is torch-only: hidden-state and attention losses on the torch "
                                        "transformer network",
        "textsift.compression.prune": "structured pruning is torch-only: it slices the torch transformer's layers",
        "textsift.inference.export": "export runs the torch network's ONNX export and the onnx quantizer",
        "textsift.inference.predictor": "a torch network handed to Predictor is wrapped in the torch runtime",
    },
    # rule 5, the torch backend's own code: its networks, training loop, optimizer, checkpoint format and DDP helpers
    # are imported by the torch backend itself and by the wiring that registers components or chooses a backend
    # (TORCH_WIRING); anything else is listed here, with why.
    "imports_torch_internals": {
        "textsift.training.run": "the run chooses the backend (see core_imports_a_backend)",
        "textsift.training.optim": "the config name of SparseAdamW (see core_imports_a_backend)",
        "textsift.compression.distill": "torch-only: distills into the torch transformer network",
        "textsift.compression.prune": "torch-only: slices the torch transformer's layers",
    },
}


def _check(rule: str, found: dict[str, list[str]]) -> None:
    expected = set(EXCEPTIONS.get(rule, {}))
    new = {m: v for m, v in found.items() if m not in expected}
    fixed = sorted(expected - set(found))
    assert not new, f"{rule}: new imports against LAYOUT.md's rules: {new}"
    assert not fixed, f"{rule}: fixed, strike from EXCEPTIONS: {fixed}"


def test_the_graph_is_read():
    g = graph()
    assert "textsift.training.run" in g and "textsift.backends.flax.trainer" in g
    assert "textsift.backends.torch.trainer" in g["textsift.training.run"][0]
    assert "textsift.components" in g["textsift.config.loader"][1]  # importlib.import_module("textsift.components")
    assert "torch" in reach("textsift.backends.torch.trainer")


def test_rule_1_inference_loads_no_training_tuning_or_workflow():
    _check("inference_imports_training", broken(modules(*INFERENCE), TRAINING_SIDE))


def test_rule_2_config_imports_no_training_or_workflow():
    _check("config_imports_training",
           broken(modules("textsift.config"), ("textsift.training", "textsift.workflow", *BACKEND_TRAINING)))


def test_rule_3_evaluation_reaches_no_training():
    _check("evaluation_imports_training", broken(modules("textsift.evaluation"), ("textsift.training", *BACKEND_TRAINING)))


def test_rule_4_data_and_text_import_no_networks():
    assert broken(modules("textsift.data", "textsift.text"), ("textsift.models", "textsift.backends")) == {}


@pytest.mark.parametrize("backend", ["torch", "flax", "onnx"])
def test_rule_5_backends_never_import_each_other(backend):
    others = tuple(f"textsift.backends.{b}" for b in ("torch", "flax", "onnx") if b != backend)
    assert direct(modules(f"textsift.backends.{backend}"), others) == {}
    assert broken(modules(f"textsift.backends.{backend}"), others) == {}


def test_rule_5_the_core_imports_backends_only_where_listed():
    core = [m for m in graph() if not _in(m, "textsift.backends")]
    _check("core_imports_a_backend", direct(core, ("textsift.backends",)))


#: the torch backend's own code, which no other part should need
TORCH_INTERNALS = tuple(f"textsift.backends.torch.{m}" for m in ("networks", "trainer", "optim", "checkpoint", "distributed"))
#: the wiring allowed to import it: the registration of the built-in components, and the CLI
TORCH_WIRING = ("textsift.components", "textsift.cli")


def torch_internals_imported(g: dict) -> dict[str, list[str]]:
    """The modules outside the torch backend and its wiring that import the torch backend's internals themselves."""
    outside = [m for m in g if not _in(m, "textsift.backends.torch", *TORCH_WIRING)]
    return direct(outside, TORCH_INTERNALS, g)


def test_rule_5_only_the_torch_backend_and_its_wiring_import_its_networks_and_trainer():
    assert "textsift.backends.torch.networks.bag" in graph() and "textsift.backends.torch.trainer" in graph()
    assert not [m for m in graph() if _in(m, "textsift.models.torch", "textsift.training.trainer")], "moved back?"
    _check("imports_torch_internals", torch_internals_imported(graph()))


def test_rule_5_torch_internals_check_catches_a_new_import():
    """The check fails on an import the layout forbids: the torch trainer in data, a torch network in config."""
    g = dict(graph())
    top, lazy = g["textsift.data.readers"]
    g["textsift.data.readers"] = (top | {"textsift.backends.torch.trainer"}, lazy)
    top, lazy = g["textsift.config.schema"]
    g["textsift.config.schema"] = (top, lazy | {"textsift.backends.torch.networks.bag"})
    found = torch_internals_imported(g)
    assert found["textsift.data.readers"] == ["textsift.backends.torch.trainer"]
    assert found["textsift.config.schema"] == ["textsift.backends.torch.networks.bag"]
    with pytest.raises(AssertionError, match="textsift.data.readers"):
        _check("imports_torch_internals", found)




@pytest.mark.parametrize("module", ["textsift.backends.flax.runtime", "textsift.backends.flax.forward",
                                    "textsift.backends.onnx.runtime", "textsift.inference",
                                    "textsift.modeldir"])
def test_the_onnx_and_flax_inference_paths_import_no_torch(module):
    """Statically (subprocess checks of the same run in test_flax.py and test_export.py)."""
    assert not {x for x in reach(module) if x.split(".")[0] == "torch"}, module
    assert "torch" in reach("textsift.backends.torch.runtime")  # the check can fail: the torch runtime does reach it
