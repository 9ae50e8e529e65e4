"""User components plug in by import path or package entry point, without editing textsift."""

from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap

import pytest

import textsift
from textsift import registry
from textsift.config import resolve
from textsift.errors import RegistryError

from conftest import tiny_config

PLUGIN = textwrap.dedent('''
    from typing import Literal
    import torch
    from textsift.backends.torch.networks.bag import BagClassifier, BagSpec

    class TinyBag(BagSpec):
        """A user's model: the bag model with a fixed, small embedding."""
        type: Literal["{name}"] = "{name}"
        embed_dim: int = 8
''')


REGISTRIES = {"model": registry.models, "tokenizer": registry.tokenizers, "reader": registry.readers,
              "dataset": registry.datasets, "loss": registry.losses, "scheduler": registry.schedulers,
              "callback": registry.callbacks, "step": registry.steps}


def _write_plugin(tmp_path, module: str, name: str, entry_point: bool, source: str | None = None) -> None:
    (tmp_path / f"{module}.py").write_text(source if source is not None else PLUGIN.replace("{name}", name))
    if entry_point:
        dist = tmp_path / f"{module}-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[textsift.models]\n{name} = {module}:TinyBag\n")


@contextlib.contextmanager
def user_plugin(tmp_path, module: str, name: str, entry_point: bool, source: str | None = None):
    """A user's package on sys.path for the duration; afterwards its module, the components registered from it
    and its directory are gone, so no later test sees them."""
    _write_plugin(tmp_path, module, name, entry_point, source)
    saved = {kind: dict(reg._items) for kind, reg in REGISTRIES.items()}
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(tmp_path))
        importlib.invalidate_caches()
        try:
            yield
        finally:
            for kind, reg in REGISTRIES.items():
                reg._items.clear()
                reg._items.update(saved[kind])
            for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
                del sys.modules[loaded]
    importlib.invalidate_caches()


def test_component_by_import_path(tmp_path, tiny_jsonl):
    with user_plugin(tmp_path, "user_models_a", "user_models_a:TinyBag", entry_point=False):
        raw = tiny_config(tiny_jsonl, "user_models_a:TinyBag", trainer__epochs=20)
        config = resolve(raw)
        assert config.model.embed_dim == 8
        result = textsift.train(config, tmp_path / "run")
        assert result.metrics["test/accuracy"] == 1.0
        assert textsift.load(tmp_path / "run").predict(["happy"]).labels[0] in ("pos", "neg")


def test_component_by_entry_point(tmp_path, tiny_jsonl):
    with user_plugin(tmp_path, "user_models_b", "tinybag", entry_point=True):
        config = resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": "tinybag", "embed_dim": 4}})
        assert type(config.model).__name__ == "TinyBag" and config.model.embed_dim == 4
        assert "tinybag" in registry.models.names()


def test_imports_setting_registers_components(tmp_path, tiny_jsonl):
    source = ("from typing import Literal\nfrom textsift import registry\nfrom textsift.backends.torch.networks.bag import BagSpec\n"
              "@registry.models.register('bag_c')\nclass BagC(BagSpec):\n    type: Literal['bag_c'] = 'bag_c'\n")
    with user_plugin(tmp_path, "user_models_c", "bag_c", entry_point=False, source=source):
        config = resolve({"imports": ["user_models_c"], "data": {"train": str(tiny_jsonl)}, "model": "bag_c"})
        assert config.model.type == "bag_c"
        assert config.tokenizer.type == "hashed_ngrams"  # the subclass keeps the bag's recommendations


def test_bad_import_paths_are_clear():
    with pytest.raises(RegistryError, match="Cannot import module 'no_such_module'"):
        registry.models.get("no_such_module:Model")
    with pytest.raises(RegistryError, match="has no attribute 'Nope'"):
        registry.models.get("textsift.backends.torch.networks.bag:Nope")


def test_a_registered_name_cannot_be_taken_twice():
    with pytest.raises(RegistryError, match="already registered"):
        registry.models.register("bag")(object)


def test_unregistered_class_named_by_path_must_be_a_spec(tiny_jsonl):
    from textsift.errors import ConfigError

    with pytest.raises(ConfigError, match="is not a textsift model"):
        resolve({"data": {"train": str(tiny_jsonl)}, "model": "collections:OrderedDict"})


def test_a_plugin_found_by_entry_point_is_looked_up_again_on_every_miss(tmp_path, tiny_jsonl):
    """Entry points are scanned on a miss, so a package installed while the process runs is found; and the
    tests' user components leave nothing behind (registry names, modules, sys.path) for the tests after them."""
    before = {kind: reg.names() for kind, reg in REGISTRIES.items()}
    with pytest.raises(RegistryError, match="Unknown model 'latebag'"):
        registry.models.get("latebag")
    with user_plugin(tmp_path, "user_models_d", "latebag", entry_point=True):  # installed after the miss
        config = resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": "latebag"}})
        assert type(config.model).__name__ == "TinyBag" and "latebag" in registry.models.names()
    assert {kind: reg.names() for kind, reg in REGISTRIES.items()} == before
    assert "user_models_d" not in sys.modules and str(tmp_path) not in sys.path
    with pytest.raises(RegistryError, match="Unknown model 'latebag'"):  # uninstalled: gone again
        registry.models.get("latebag")
