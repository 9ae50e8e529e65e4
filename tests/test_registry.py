"""User components plug in by import path or package entry point, without editing textsift."""

from __future__ import annotations

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
    from textsift.models.torch.bag import BagClassifier, BagSpec

    class TinyBag(BagSpec):
        """A user's model: the bag model with a fixed, small embedding."""
        type: Literal["{name}"] = "{name}"
        embed_dim: int = 8
''')


def _write_plugin(tmp_path, module: str, name: str, entry_point: bool) -> None:
    (tmp_path / f"{module}.py").write_text(PLUGIN.replace("{name}", name))
    if entry_point:
        dist = tmp_path / f"{module}-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[textsift.models]\n{name} = {module}:TinyBag\n")


def test_component_by_import_path(tmp_path, monkeypatch, tiny_jsonl):
    _write_plugin(tmp_path, "user_models_a", "user_models_a:TinyBag", entry_point=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = tiny_config(tiny_jsonl, "user_models_a:TinyBag", trainer__epochs=20)
    config = resolve(raw)
    assert config.model.embed_dim == 8
    result = textsift.train(config, tmp_path / "run")
    assert result.metrics["test/accuracy"] == 1.0
    assert textsift.load(tmp_path / "run").predict(["happy"]).labels[0] in ("pos", "neg")


def test_component_by_entry_point(tmp_path, monkeypatch, tiny_jsonl):
    _write_plugin(tmp_path, "user_models_b", "tinybag", entry_point=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": "tinybag", "embed_dim": 4}})
    assert type(config.model).__name__ == "TinyBag" and config.model.embed_dim == 4
    assert "tinybag" in registry.models.names()


def test_imports_setting_registers_components(tmp_path, monkeypatch, tiny_jsonl):
    (tmp_path / "user_models_c.py").write_text(
        "from typing import Literal\nfrom textsift import registry\nfrom textsift.models.torch.bag import BagSpec\n"
        "@registry.models.register('bag_c')\nclass BagC(BagSpec):\n    type: Literal['bag_c'] = 'bag_c'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = resolve({"imports": ["user_models_c"], "data": {"train": str(tiny_jsonl)}, "model": "bag_c"})
    assert config.model.type == "bag_c"
    assert config.tokenizer.type == "hashed_ngrams"  # the subclass keeps the bag's recommendations


def test_bad_import_paths_are_clear():
    with pytest.raises(RegistryError, match="Cannot import module 'no_such_module'"):
        registry.models.get("no_such_module:Model")
    with pytest.raises(RegistryError, match="has no attribute 'Nope'"):
        registry.models.get("textsift.models.torch.bag:Nope")


def test_a_registered_name_cannot_be_taken_twice():
    with pytest.raises(RegistryError, match="already registered"):
        registry.models.register("bag")(object)


def test_unregistered_class_named_by_path_must_be_a_spec(tiny_jsonl):
    from textsift.errors import ConfigError

    with pytest.raises(ConfigError, match="is not a textsift model"):
        resolve({"data": {"train": str(tiny_jsonl)}, "model": "collections:OrderedDict"})


def test_plugins_dir_not_left_on_path():
    assert not any("user_models" in p for p in sys.path)
