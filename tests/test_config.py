from __future__ import annotations

import json
from pathlib import Path

import pytest

from textsift.config import Config, dump_yaml, load_config, resolve
from textsift.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_anchors_and_aliases(tmp_path, tiny_jsonl):
    cfg = write(tmp_path / "c.yaml", f"""
x-dims: &dims {{embed_dim: 32}}
data: {{train: {tiny_jsonl}}}
model: {{type: bag, <<: *dims}}
""")
    # unknown top-level keys are rejected, so anchors live inside a known mapping instead
    with pytest.raises(ConfigError, match="unknown setting 'x-dims'"):
        load_config(cfg)
    cfg = write(tmp_path / "c2.yaml", f"""
data: {{train: &data {tiny_jsonl}, validation: *data}}
model:
  type: cnn
  embed_dim: &width 24
  channels: *width
  head: {{<<: &head {{hidden_dims: [*width], dropout: 0.1}}, activation: gelu}}
trainer: {{batch_size: &batch 8, eval_batch_size: *batch, epochs: 2}}
""")
    config = load_config(cfg)
    assert config.data.validation == config.data.train == str(tiny_jsonl)
    assert config.model.embed_dim == config.model.channels == 24  # a scalar alias
    assert config.model.head.hidden_dims == [24] and config.model.head.dropout == 0.1  # a merged mapping
    assert config.model.head.activation == "gelu"  # beside the merged keys
    assert config.trainer.eval_batch_size == config.trainer.batch_size == 8
    assert "&" not in dump_yaml(config) and "*" not in dump_yaml(config)  # the saved config spells every value out


def test_yaml_alias_reuses_a_value(tmp_path, tiny_jsonl):
    cfg = write(tmp_path / "c.yaml", f"""
data:
  train: &path {tiny_jsonl}
  validation: *path
""")
    config = load_config(cfg)
    assert config.data.validation == config.data.train == str(tiny_jsonl)


def test_jsonnet_file(tmp_path, tiny_jsonl):
    cfg = write(tmp_path / "c.jsonnet", f"""
local dim = 16;
{{ data: {{ train: '{tiny_jsonl}' }}, model: {{ type: 'cnn', embed_dim: dim * 2, channels: dim }} }}
""")
    config = load_config(cfg)
    assert (config.model.type, config.model.embed_dim, config.model.channels) == ("cnn", 32, 16)


def test_jsonnet_functions_and_imports_relative_to_the_file(tmp_path, tiny_jsonl):
    (tmp_path / "lib").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "d.jsonl").write_text(tiny_jsonl.read_text())
    write(tmp_path / "lib" / "models.libsonnet", """
{
  cnn(width, dropout=0.0):: { type: 'cnn', embed_dim: width, channels: std.floor(width / 2), dropout: dropout },
  head: { hidden_dims: [8], activation: 'gelu' },
}
""")
    write(tmp_path / "lib" / "seed.txt", "7")
    cfg = write(tmp_path / "configs" / "c.jsonnet", """
local models = import '../lib/models.libsonnet';
local epochs(n) = { epochs: n, batch_size: 4 * n };
{
  seed: std.parseInt(importstr '../lib/seed.txt'),
  data: { train: 'd.jsonl' },
  model: models.cnn(24, dropout=0.25) + { head: models.head },
  trainer: epochs(3),
}
""")
    config = load_config(cfg)
    assert config.seed == 7
    assert (config.model.type, config.model.embed_dim, config.model.channels, config.model.dropout) == ("cnn", 24, 12, 0.25)
    assert config.model.head.hidden_dims == [8] and config.model.head.activation == "gelu"
    assert config.trainer.epochs == 3 and config.trainer.batch_size == 12
    assert Path(config.data.train) == (tmp_path / "configs" / "d.jsonl").resolve()  # relative to the file, as in YAML
    with pytest.raises(ConfigError, match="c2.jsonnet"):  # a missing import names the file
        load_config(write(tmp_path / "configs" / "c2.jsonnet", "{ data: { train: 'd.jsonl' }, model: import 'nope.libsonnet' }"))


def test_jsonnet_syntax_error_names_the_file(tmp_path):
    cfg = write(tmp_path / "bad.jsonnet", "{ data: ")
    with pytest.raises(ConfigError, match="bad.jsonnet"):
        load_config(cfg)


def test_precedence_override_over_file_over_model_recommendation_over_default(tmp_path, tiny_jsonl):
    cfg = write(tmp_path / "c.yaml", f"data: {{train: {tiny_jsonl}}}\nmodel: {{type: bag}}\ntrainer: {{epochs: 7}}\n")
    config = load_config(cfg, overrides=["trainer.optimizer.lr=3e-4"])
    assert config.trainer.epochs == 7  # file
    assert config.trainer.optimizer.lr == pytest.approx(3e-4)  # override
    assert config.trainer.optimizer.type == "textsift.training.optim:SparseAdamW"  # bag's recommendation
    assert config.trainer.eval_batch_size == 512  # schema default
    config = load_config(cfg, overrides=["trainer.epochs=2"])
    assert config.trainer.epochs == 2


def test_a_different_component_type_replaces_the_recommended_one(tiny_jsonl):
    config = resolve({"data": {"train": str(tiny_jsonl)}, "model": "bag", "tokenizer": {"type": "words"}})
    assert config.tokenizer.type == "words"  # the bag's hashed_ngrams settings did not leak in


def test_relative_data_paths_are_relative_to_the_config_file(tmp_path, tiny_jsonl):
    sub = tmp_path / "configs"
    sub.mkdir()
    (sub / "d.jsonl").write_text(tiny_jsonl.read_text())
    config = load_config(write(sub / "c.yaml", "data: {train: d.jsonl}\n"))
    assert Path(config.data.train) == (sub / "d.jsonl").resolve()


def test_typo_in_a_key_names_the_path_and_suggests(tiny_jsonl):
    with pytest.raises(ConfigError) as err:
        resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": "bag", "embd_dim": 10}})
    msg = str(err.value)
    assert "unknown setting 'model.embd_dim'" in msg and "Did you mean 'embed_dim'?" in msg
    assert len(msg.splitlines()) == 1


def test_typo_in_a_section_key(tiny_jsonl):
    with pytest.raises(ConfigError, match=r"unknown setting 'trainer.epocs'. Did you mean 'epochs'\?"):
        resolve({"data": {"train": str(tiny_jsonl)}, "trainer": {"epocs": 3}})


def test_wrong_type_names_path_expected_and_found(tiny_jsonl):
    with pytest.raises(ConfigError, match=r"trainer.epochs: Input should be a valid integer.*found 'many'"):
        resolve({"data": {"train": str(tiny_jsonl)}, "trainer": {"epochs": "many"}})
    with pytest.raises(ConfigError, match=r"trainer.batch_size must be >= 1 or .auto., got 0"):
        resolve({"data": {"train": str(tiny_jsonl)}, "trainer": {"batch_size": 0}})


def test_unknown_model_type_suggests_a_registered_one(tiny_jsonl):
    with pytest.raises(ConfigError) as err:
        resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": "lstn"}})
    msg = str(err.value)
    assert "model: Unknown model 'lstn'. Did you mean 'lstm'?" in msg
    registered = msg.split("Registered models: ", 1)[1].split(".", 1)[0].split(", ")
    assert {"bag", "cnn", "gru", "lstm"} <= set(registered) and registered == sorted(registered)


def test_missing_required_setting(tmp_path):
    with pytest.raises(ConfigError, match="missing required setting 'data'"):
        resolve({})


def test_optimizer_arguments_are_checked_against_the_class(tiny_jsonl):
    config = resolve({"data": {"train": str(tiny_jsonl)}, "model": "cnn",
                      "trainer": {"optimizer": {"type": "torch.optim:AdamW", "lr": 0.01, "betas": [0.8, 0.9]}}})
    assert config.trainer.optimizer.kwargs()["betas"] == [0.8, 0.9]
    with pytest.raises(ConfigError, match="has no argument 'momentun'. Did you mean 'momentum'"):
        resolve({"data": {"train": str(tiny_jsonl)}, "trainer": {"optimizer": {"type": "torch.optim:SGD", "momentun": 0.9}}})
    with pytest.raises(ConfigError, match="is not a torch.optim.Optimizer"):
        resolve({"data": {"train": str(tiny_jsonl)}, "trainer": {"optimizer": {"type": "torch.nn:Linear"}}})


def test_saved_config_is_complete_and_round_trips(tiny_jsonl):
    config = resolve({"data": {"train": str(tiny_jsonl)}, "model": "lstm"})
    import yaml

    dumped = yaml.safe_load(dump_yaml(config))
    assert dumped["model"]["hidden_size"] == 128 and dumped["trainer"]["scheduler"]["type"] == "linear"
    assert resolve(dumped) == config


def test_schema_lists_every_registered_model():
    schema = json.dumps(Config.model_json_schema())
    for name in ("BagSpec", "CnnSpec", "LstmSpec", "GruSpec", "HashedNgramsSpec", "WordsSpec", "SortDetection"):
        assert name in schema


def test_validation_metric_without_validation_data_is_an_error(tiny_jsonl):
    with pytest.raises(ConfigError, match="no validation data"):
        resolve({"data": {"train": str(tiny_jsonl), "validation_split": 0}})
    config = resolve({"data": {"train": str(tiny_jsonl), "validation_split": 0},
                      "trainer": {"main_metric": "train/loss", "main_metric_mode": "min", "early_stopping": None}})
    assert config.trainer.main_metric == "train/loss"


def test_override_syntax_error():
    from textsift.config.loader import apply_overrides

    with pytest.raises(ConfigError, match="dotted.path=value"):
        apply_overrides({}, ["trainer.epochs"])
    assert apply_overrides({"model": "bag"}, ["model.embed_dim=8"]) == {"model": {"type": "bag", "embed_dim": 8}}


def test_exponent_without_dot_is_a_number_everywhere(tmp_path, tiny_jsonl):
    cfg = write(tmp_path / "c.yaml", f"data: {{train: {tiny_jsonl}}}\ntrainer: {{optimizer: {{type: 'torch.optim:AdamW', lr: 3e-4, eps: 1e-6}}}}\n")
    config = load_config(cfg, overrides=["trainer.optimizer.weight_decay=1e-2"])
    assert config.trainer.optimizer.lr == 3e-4 and config.trainer.optimizer.kwargs()["eps"] == 1e-6
    assert config.trainer.optimizer.weight_decay == 0.01


def test_precision_32_given_as_a_number_is_the_setting_32(tmp_path):
    """YAML and --set read 32 as a number; it was refused ("found 32") though "32" is the default."""
    from textsift.config import load_config

    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n')
    config = load_config(base={"data": {"train": str(data)}}, overrides=["trainer.precision=32"])
    assert config.trainer.precision == "32"
