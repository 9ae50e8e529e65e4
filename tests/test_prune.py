"""Structured pruning (textsift.compression.prune): heads and FFN neurons sliced out of the weights give the outputs
of the unpruned model with those units masked; the pruned shapes survive save and load; the command's errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from textsift.config import resolve
from textsift.data.example import Example
from textsift.errors import ConfigError

from conftest import TINY, tiny_config


@pytest.fixture(scope="module")
def model_dir(tiny_bert, tmp_path_factory):
    import textsift
    from conftest import write_jsonl

    tmp_path = tmp_path_factory.mktemp("prune")
    raw = tiny_config(tmp_path / "t.jsonl", "transformer", trainer__epochs=1)
    write_jsonl(tmp_path / "t.jsonl", [{"text": t, "label": y} for t, y in TINY])
    raw["model"] = {"type": "transformer", "pretrained": str(tiny_bert), "pooling": "mean"}
    textsift.train(resolve(raw), tmp_path / "run", report=False)
    return tmp_path / "run" / "model"


def _batch(predictor):
    ids = predictor.tokenizer.encode([Example(text=t) for t, _ in TINY])
    lengths = torch.from_numpy(ids.lengths)
    padded = torch.zeros(len(TINY), int(lengths.max()), dtype=torch.long)
    for i in range(len(TINY)):
        padded[i, : lengths[i]] = torch.from_numpy(ids[i])
    return {"ids": padded, "lengths": lengths}


def test_pruned_heads_and_neurons_equal_masking_them_and_survive_save_and_load(model_dir, tmp_path):
    import copy

    import textsift
    from textsift.compression.prune import mask_units, prune_transformer
    from textsift.modeldir import load_model_dir, save_model_dir

    predictor = textsift.load(model_dir, runtime="torch")
    net = predictor.model
    heads, neurons = [[1], [0]], [[0, 3, 5, 36], list(range(0, 37, 2))]  # tiny_bert: 2 layers, 2 heads, FFN 37
    batch = _batch(predictor)
    with torch.no_grad():
        full = net(batch)
        masked = mask_units(copy.deepcopy(net), heads, neurons)(batch)
        pruned_net = prune_transformer(copy.deepcopy(net), heads, neurons)
        pruned = pruned_net(batch)
    torch.testing.assert_close(pruned, masked, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(pruned, full, atol=1e-4)  # the units removed mattered
    layer = pruned_net.encoder.encoder.layer[1]
    assert layer.attention.self.query.out_features == 16 and layer.intermediate.dense.out_features == 19
    assert sum(p.numel() for p in pruned_net.parameters()) < sum(p.numel() for p in net.parameters())
    config, _, tokenizer, labels, meta = load_model_dir(model_dir)
    save_model_dir(tmp_path / "pruned", config=config, model=pruned_net, tokenizer=tokenizer, labels=labels, meta=meta)
    assert (tmp_path / "pruned" / "model.safetensors").stat().st_size < (model_dir / "model.safetensors").stat().st_size
    reloaded = textsift.load(tmp_path / "pruned", runtime="torch")
    with torch.no_grad():
        torch.testing.assert_close(reloaded.model(batch), pruned, atol=1e-6, rtol=1e-6)


def test_importance_ranks_units_and_choose_kept_keeps_one_per_layer(model_dir):
    import textsift
    from textsift.batching import EncodedDataset
    from textsift.compression.prune import choose_kept, importance_scores

    predictor = textsift.load(model_dir, runtime="torch")
    ids = predictor.tokenizer.encode([Example(text=t) for t, _ in TINY])
    labels = np.array([predictor.label_names.index(y) for _, y in TINY])
    scores = importance_scores(predictor.model, EncodedDataset(ids, labels))
    assert [len(s) for s in scores.heads] == [2, 2] and [len(s) for s in scores.neurons] == [37, 37]
    assert all(np.linalg.norm(s) == pytest.approx(1.0) for s in scores.heads + scores.neurons)
    assert all(p.requires_grad for p in predictor.model.parameters())  # left as it was
    kept = choose_kept([np.array([0.9, 0.1, 0.5]), np.array([0.2])], 0.5)
    # 2 of 4 to remove, least important first across layers: 0.1, then 0.5 (0.2 is its layer's only unit)
    assert kept == [[0], [0]]
    assert choose_kept([np.array([0.9, 0.1, 0.5]), np.array([0.2, 0.3])], 0.4) == [[0, 2], [1]]


def test_the_prune_command_fine_tunes_a_smaller_model_directory(model_dir, tmp_path):
    import textsift
    from typer.testing import CliRunner

    from textsift.cli import commands  # noqa: F401  (registers the commands)
    from textsift.cli.app import app

    result = CliRunner().invoke(app, ["prune", str(model_dir), "--heads", "0.5", "--ffn", "0.5", "--distill", "--no-report",
                                      "-o", str(tmp_path / "run"), "--set", "trainer.epochs=1",
                                      "--set", f"distill.cache_dir={tmp_path / 'cache'}"])
    assert result.exit_code == 0, result.output
    pruned = textsift.load(tmp_path / "run" / "model", runtime="torch")
    assert [layer.attention.self.num_attention_heads for layer in pruned.model.encoder.encoder.layer] == [1, 1]
    assert sum(pruned.model.encoder.config.textsift_pruned["ffn"]) == 37  # half of 2 x 37 neurons removed
    assert pruned.full_config().distill.teacher == str(model_dir.resolve())
    assert len(pruned.predict([t for t, _ in TINY])) == len(TINY)
    from textsift.inference.export import export_model_dir

    manifest = export_model_dir(tmp_path / "run" / "model")  # the smaller shapes export, checked against torch
    assert manifest["files"]["model.onnx"]["parity_max_probability_diff"] < 1e-4


def test_prune_errors_name_the_option(model_dir, tmp_path, tiny_jsonl):
    import textsift
    from textsift.compression.prune import prune

    with pytest.raises(ConfigError, match=r"prune --heads: the fraction of units to remove must be in \[0, 1\); got 1.0"):
        prune(model_dir, tmp_path / "a", heads=1.0, ffn=0.5)
    textsift.train(resolve(tiny_config(tiny_jsonl, "bag", trainer__epochs=1)), tmp_path / "bag", report=False)
    with pytest.raises(ConfigError, match=r"prune: .* holds a 'bag' model; structured pruning is for transformer models"):
        prune(tmp_path / "bag", tmp_path / "b", heads=0.5, ffn=0.5)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
