"""The Python API: ``textsift.train`` / ``evaluate`` / ``load`` as a user calls them, and the README example."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import textsift
from textsift.config import resolve
from textsift.errors import ConfigError, DataError

from conftest import REPO, TINY, tiny_config

ROWS = [{"text": t, "label": y} for t, y in TINY]
TEXTS = [t for t, _ in TINY]
LABELS = [y for _, y in TINY]
FAST = {"model": "bag", "trainer": {"epochs": 5, "batch_size": 4, "optimizer": {"lr": 0.3}, "early_stopping": None}}


def readme_python_api_example() -> str:
    """The one ```python block of the README's "## Python API" section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section holds exactly one runnable example"
    return blocks[0]


def test_readme_python_api_example_runs_and_its_comments_hold(tmp_path, monkeypatch):
    code = readme_python_api_example()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    # every top-level `expression  # value` line shows what the expression gives
    checked = 0
    for line in code.splitlines():
        match = re.fullmatch(r"(\S[^#]*?)\s+#\s+(.+)", line)
        if match is None or "=" in match.group(1).replace("==", ""):
            continue
        try:
            expected = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError):
            continue
        assert eval(match.group(1), namespace) == expected, line
        checked += 1
    assert checked == 3
    run = tmp_path / "runs" / "python-api"
    saved = yaml.safe_load((run / "model" / "config.yaml").read_text())
    assert saved["data"]["train"] == str(run / "data" / "train.jsonl")
    assert len((run / "data" / "train.jsonl").read_text().splitlines()) == 40


# --- the config: a dict, a file, a Config ---------------------------------------------------------------


def test_dict_config_with_rows_in_memory_saves_them_as_the_files_the_model_names(tmp_path, monkeypatch):
    run = tmp_path / "run"
    result = textsift.train({**FAST, "data": {"train": ROWS}}, run, validation=(TEXTS, LABELS))
    assert result.metrics["val/accuracy"] == 1.0
    saved = yaml.safe_load((run / "model" / "config.yaml").read_text())
    assert saved["data"]["train"] == str((run / "data" / "train.jsonl").resolve())
    assert saved["data"]["validation"] == str((run / "data" / "validation.jsonl").resolve())
    assert [json.loads(line) for line in (run / "data" / "train.jsonl").read_text().splitlines()] == ROWS
    # the model directory alone rebuilds the rest: calibration reads the validation file its config names
    monkeypatch.chdir(tmp_path)
    metrics = textsift.evaluate(run / "model", ROWS, calibrate_on=True)
    assert metrics["test/accuracy"] == 1.0
    assert (run / "model" / "calibration.json").is_file()


def test_config_file_path_yaml_and_jsonnet(tmp_path, tiny_jsonl):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(yaml.safe_dump({**FAST, "data": {"train": tiny_jsonl.name, "test": tiny_jsonl.name}}))
    result = textsift.train(str(yaml_file), tmp_path / "run")  # data paths are relative to the config file
    assert result.metrics["test/examples"] == 16
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]["train"] == str(tiny_jsonl)
    jsonnet_file = tmp_path / "c.jsonnet"
    jsonnet_file.write_text(json.dumps({**FAST, "data": {"train": "missing.jsonl"}}))
    result = textsift.train(jsonnet_file, None, train=ROWS, test=ROWS[:5])  # keyword data replaces the file's
    assert result.metrics["test/examples"] == 5 and result.run_dir is None


def test_config_object_with_a_dataframe(tiny_jsonl):
    pd = pytest.importorskip("pandas")
    config = resolve({**FAST, "data": {"train": str(tiny_jsonl)}})
    frame = pd.DataFrame({"text": TEXTS, "label": LABELS, "extra": range(len(TEXTS))})
    result = textsift.train(config, test=frame)
    assert result.metrics["test/examples"] == 16
    assert config.data.test is None  # the caller's Config is left as it was


def test_rows_follow_the_reader_columns():
    rows = [{"sentence": t, "y": label} for t, label in TINY]
    config = {**FAST, "data": {"train": rows, "test": rows, "reader": {"text_column": "sentence", "label_column": "y"}}}
    assert textsift.train(config).metrics["test/examples"] == 16
    with pytest.raises(DataError, match=r"^data.train \(in memory\): no column 'sentence' \(data.reader.text_column\)"):
        textsift.train(config, train=ROWS)
    result = textsift.train(config, train=(TEXTS, LABELS))  # a pair takes the reader's column names
    assert result.metrics["test/examples"] == 16


def test_config_object_alone_is_used_as_given(tiny_jsonl):
    config = resolve(tiny_config(tiny_jsonl, trainer__epochs=1))
    assert textsift.train(config).state.epoch == 1


# --- data in memory is checked like a file, and errors stay short ---------------------------------------


def test_an_empty_text_in_memory_names_the_row_and_writes_nothing(tmp_path):
    rows = [*ROWS[:2], {"text": "  ", "label": "pos"}, *ROWS[3:]]
    with pytest.raises(DataError, match=r"^data.train \(in memory\), row 3: the text \(column 'text'\) is empty"):
        textsift.train(FAST, tmp_path / "run", train=rows)
    assert not (tmp_path / "run").exists()


def test_a_run_that_failed_on_its_data_does_not_block_its_retry(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DataError, match="typo.jsonl' does not exist"):
        textsift.train(FAST, run, train=ROWS, test=tmp_path / "typo.jsonl")
    result = textsift.train(FAST, run, train=ROWS, test=ROWS[:4])
    assert result.metrics["test/examples"] == 4 and (run / "model").is_dir()


def test_a_missing_label_in_a_dataframe_names_the_row():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"text": TEXTS, "label": [*LABELS[:4], None, *LABELS[5:]]})
    with pytest.raises(DataError, match=r"^data.validation \(in memory\), row 5: the label \(column 'label'\) is empty"):
        textsift.train({**FAST, "data": {"train": ROWS, "validation": frame}})


def test_a_dataframe_without_the_text_column_names_the_setting():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"sentence": TEXTS, "label": LABELS})
    with pytest.raises(DataError, match=r"^data.train \(in memory\): no column 'text' \(data.reader.text_column\)\. Columns found: 'sentence', 'label'"):
        textsift.train(FAST, train=frame)


def test_texts_and_labels_of_different_lengths():
    with pytest.raises(DataError, match="data.train: 16 texts but 15 labels"):
        textsift.train(FAST, train=(TEXTS, LABELS[:-1]))


def test_a_wrong_type_is_a_short_error_without_the_frame():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"text": TEXTS, "label": LABELS})
    errors = []
    for config, kwargs in [
        ({**FAST, "data": {"train": 42}}, {}),
        (FAST, {"train": {"text": TEXTS, "label": LABELS}}),  # columns as a dict: not a generator config
        ({**FAST, "data": {"train": ROWS}, "trainer": {"epochs": frame}}, {}),
        (frame, {}),
    ]:
        with pytest.raises(ConfigError) as info:
            textsift.train(config, **kwargs)
        errors.append(str(info.value))
    assert errors[0] == (
        "data.train: expected a file path, a list of {'text': ..., 'label': ...} dicts, a (texts, labels) pair "
        "or a pandas DataFrame; got int."
    )
    assert errors[1].startswith("data.train: a mapping here names a dataset generator")
    assert errors[2] == "config (dict): trainer.epochs: Input should be a valid integer (found a DataFrame)."
    assert errors[3].startswith("config: expected a config file path") and errors[3].endswith("got DataFrame.")
    for message in errors:
        assert len(message) < 300 and "happy" not in message and "{{" not in message


def test_evaluate_on_a_file_and_in_memory(tmp_path, tiny_jsonl):
    result = textsift.train(FAST, tmp_path / "run", train=tiny_jsonl)
    on_file = textsift.evaluate(result.model_dir, tiny_jsonl)
    assert on_file["test/examples"] == 16
    assert textsift.evaluate(result.model_dir, (TEXTS, LABELS)) == on_file
    with pytest.raises(DataError, match=r"^data \(in memory\), row 1: the text \(column 'text'\) is empty"):
        textsift.evaluate(result.model_dir, [{"text": "", "label": "pos"}])
    with pytest.raises(ConfigError, match="data: expected a file path.*got int"):
        textsift.evaluate(result.model_dir, 3)


# --- the public names --------------------------------------------------------------------------------------

PUBLIC = ["Config", "Predictions", "Predictor", "TextsiftError", "evaluate", "load", "load_config", "train"]


def test_all_lists_exactly_the_public_api():
    assert sorted(textsift.__all__) == PUBLIC
    assert set(PUBLIC) <= set(dir(textsift))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        textsift.nope  # noqa: B018


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves_and_has_a_docstring(name):
    obj = getattr(textsift, name)
    assert obj.__doc__ and obj.__doc__.strip()


def test_import_is_cheap():
    code = "import sys, textsift; textsift.TextsiftError; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    assert out.stdout.strip() == "False"
