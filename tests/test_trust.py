"""No silent wrong result on the user's path: every input row is answered, in order, or refused by name.

Each test here reproduces a defect that once gave a wrong result without a word (a dropped row, a lost
second text, garbled text predicted as if fine, a mixed report) or a traceback, and checks the fix.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from textsift.cli import commands  # noqa: F401
from textsift.cli.app import app, hoist_global_flags
from textsift.errors import DataError

from conftest import REPO, TINY, write_jsonl

runner = CliRunner()


def run(*args: str, input: str | None = None):
    return runner.invoke(app, hoist_global_flags(list(args)), input=input)


def error_of(result, max_lines: int = 4) -> str:
    """The error a user sees: exit 1, no traceback, at most ``max_lines`` lines; returned as one string."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= max_lines and lines[0].startswith("error: "), result.stderr
    return " ".join(line.strip() for line in lines)


def train_tiny(tmp: Path, rows: list[dict], *extra: str) -> Path:
    data = write_jsonl(tmp / "train.jsonl", rows)
    result = run("-q", "train", "--train", str(data), "--validation", str(data), "--model", "bag", "--output", str(tmp / "run"),
                 "--set", "trainer.epochs=30", "--set", "trainer.early_stopping=null", "--no-report", *extra)
    assert result.exit_code == 0, result.output + result.stderr
    return tmp / "run" / "model"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("trust"), [{"text": t, "label": l} for t, l in TINY])


@pytest.fixture(scope="module")
def pair_model(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pairs")
    rows = [{"text": t, "second": "same" if l == "pos" else "other", "label": l} for t, l in TINY]
    return train_tiny(tmp, rows, "--set", "data.reader.text_pair_column=second")


# --- 2. predict answers every row, in order, with a key ----------------------------------------------------


MESSY = "id,text\n7,what a happy day\n8,\n9,   \n10,awful dreadful film\n"


def test_predict_refuses_an_empty_text_by_default_naming_the_row(model, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text(MESSY)
    message = error_of(run("predict", str(model), str(data), "-o", str(tmp_path / "p.csv")))
    assert "in.csv, row 3" in message and "empty" in message and "--on-empty" in message
    assert not (tmp_path / "p.csv").exists()


def test_predict_skip_writes_skipped_rows_in_place_with_kept_columns(model, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text(MESSY)
    out = tmp_path / "p.csv"
    result = run("predict", str(model), str(data), "-o", str(out), "--on-empty", "skip", "--keep-columns", "id")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["id"] for r in rows] == ["7", "8", "9", "10"]  # one output row per input row, in input order
    assert [r["row"] for r in rows] == ["2", "3", "4", "5"]  # the row numbers errors use (header = row 1)
    assert [r["skipped"] for r in rows] == ["", "empty text", "empty text", ""]
    assert rows[1]["label"] == "" and rows[1]["p_pos"] == ""
    assert rows[0]["label"] == "pos" and rows[3]["label"] == "neg"
    assert b"\r\n" not in out.read_bytes()


def test_a_single_column_file_with_a_blank_text_keeps_its_row(model, tmp_path):
    data = tmp_path / "texts.csv"
    data.write_text('text\nwhat a happy day\n   \n""\nawful dreadful film\n')
    assert "texts.csv, row 3" in error_of(run("predict", str(model), str(data)))
    records = [json.loads(line) for line in run("predict", str(model), str(data), "--on-empty", "skip").stdout.splitlines()]
    assert [r["row"] for r in records] == [2, 3, 4, 5] and [r.get("skipped") for r in records] == [None, "empty text", "empty text", None]


def test_predict_policy_predict_gives_every_row_a_label(model, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text(MESSY)
    result = run("predict", str(model), str(data), "--on-empty", "predict", "--keep-columns", "id")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == ["7", "8", "9", "10"]
    assert all(r["label"] in ("pos", "neg") for r in records)


def test_stdin_empty_lines_are_rows(model):
    message = error_of(run("predict", str(model), "-", input="happy day\n\nawful film\n"))
    assert "stdin, line 2" in message
    result = run("predict", str(model), "-", "--on-empty", "skip", input="happy day\n\nawful film\n")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["row"] for r in records] == [1, 2, 3] and records[1] == {"row": 2, "text": "", "label": None, "skipped": "empty text"}


def test_keep_columns_must_exist(model, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text(MESSY)
    message = error_of(run("predict", str(model), str(data), "--keep-columns", "idd"))
    assert "no column 'idd' (--keep-columns)" in message and "Did you mean 'id'" in message


def test_api_empty_text_policy(model):
    import textsift

    predictor = textsift.load(model)
    with pytest.raises(DataError, match="text 2: the text is empty"):
        predictor.predict(["happy day", " ", "awful film"])
    preds = predictor.predict(["happy day", " ", "awful film"], on_empty="skip")
    assert preds.labels[0] == "pos" and preds.labels[1] is None and preds.labels[2] == "neg"
    assert np.isnan(preds.probabilities[1]).all() and preds.skipped == [False, True, False]
    assert len(predictor.predict(["happy day", " "], on_empty="predict")) == 2


# --- 3. reader settings on predict and evaluate; errors name the command's own options ----------------------


@pytest.fixture(scope="module")
def latin1_model(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("latin1")
    rows = [("café crème délicieux", "pos"), ("très bon génial", "pos"), ("superbe élégant", "pos"), ("joli été", "pos"),
            ("mauvais désolé", "neg"), ("horrible détesté", "neg"), ("ennuyeux médiocre", "neg"), ("pénible raté", "neg")]
    data = tmp / "train.csv"
    data.write_bytes(("text,label\n" + "".join(f"{t},{l}\n" for t, l in rows * 2)).encode("latin-1"))
    result = run("-q", "train", "--train", str(data), "--validation", str(data), "--model", "bag", "--output", str(tmp / "run"),
                 "--set", "data.reader.encoding=latin-1", "--set", "trainer.epochs=30", "--set", "trainer.early_stopping=null",
                 "--no-report")
    assert result.exit_code == 0, result.stderr
    return tmp / "run" / "model"


def test_utf8_input_to_a_latin1_model_warns_and_encoding_fixes_it(latin1_model, tmp_path, caplog):
    data = tmp_path / "new.csv"
    data.write_text("text\ncafé crème délicieux\n", encoding="utf-8")
    result = run("predict", str(latin1_model), str(data))
    assert "looks like UTF-8" in result.stderr and "--encoding" in result.stderr
    garbled = json.loads(result.stdout)["text"]
    assert garbled != "café crème délicieux"  # what the warning is about
    result = run("predict", str(latin1_model), str(data), "--encoding", "utf-8")
    assert result.exit_code == 0 and "looks like UTF-8" not in result.stderr
    assert json.loads(result.stdout)["text"] == "café crème délicieux" and json.loads(result.stdout)["label"] == "pos"
    labeled = tmp_path / "labeled.csv"
    labeled.write_text("sentence;gold\ncafé crème délicieux;pos\nhorrible détesté;neg\n", encoding="utf-8")
    metrics = json.loads(run("evaluate", str(latin1_model), str(labeled), "--json", "--encoding", "utf-8", "--delimiter", ";",
                             "--text-column", "sentence", "--label-column", "gold").stdout)
    assert metrics["test/accuracy"] == 1.0


def test_reader_errors_name_the_options_of_the_command(model, tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text\nna\xefve\n".encode("latin-1"))
    message = error_of(run("predict", str(model), str(latin)))
    assert "--encoding" in message and "data.reader" not in message
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("sentence,label\nhappy,pos\nsad,neg\n")
    for command in ("predict", "evaluate"):
        message = error_of(run(command, str(model), str(wrong)))
        assert "(--text-column)" in message and "Set --text-column" in message and "data.reader" not in message
    message = error_of(run("evaluate", str(model), str(wrong), "--text-column", "sentence", "--label-column", "gold"))
    assert "(--label-column)" in message
    unknown = tmp_path / "data.txt"
    unknown.write_text("text\nhi\n")
    assert "--reader" in error_of(run("predict", str(model), str(unknown)))
    assert run("predict", str(model), str(unknown), "--reader", "csv").exit_code == 0
    assert "--encoding: unknown encoding" in error_of(run("predict", str(model), str(wrong), "--encoding", "klingon"))


def test_evaluate_unseen_label_does_not_advise_editing_the_trained_config(model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "happy", "label": "pos"}, {"text": "meh", "label": "neutral"}])
    message = error_of(run("evaluate", str(model), str(data)))
    assert "row 2: label 'neutral' is not in the label set [neg, pos]" in message
    assert "data.labels" not in message and "trained on these labels" in message


# --- 4. text pairs ---------------------------------------------------------------------------------------------


def test_pair_model_keeps_and_demands_the_second_text(pair_model, tmp_path):
    data = tmp_path / "pairs.csv"
    data.write_text("text,second\nwhat a happy day,same\nawful dreadful film,other\n")
    out = tmp_path / "p.csv"
    assert run("predict", str(pair_model), str(data), "-o", str(out)).exit_code == 0
    rows = list(csv.DictReader(out.open(newline="")))
    assert [(r["text"], r["text_pair"], r["label"]) for r in rows] == [
        ("what a happy day", "same", "pos"), ("awful dreadful film", "other", "neg")]
    result = run("predict", str(pair_model), "-", input="what a happy day\tsame\n")
    assert json.loads(result.stdout)["text_pair"] == "same"
    assert "stdin, line 1: this model classifies text pairs" in error_of(run("predict", str(pair_model), "-", input="no tab here\n"))
    single = tmp_path / "single.csv"
    single.write_text("text\nwhat a happy day\n")
    assert "no column 'second' (--text-pair-column)" in error_of(run("predict", str(pair_model), str(single)))


def test_pair_model_api(pair_model, model):
    import textsift

    predictor = textsift.load(pair_model)
    with pytest.raises(DataError, match="classifies text pairs"):
        predictor.predict(["what a happy day"])
    assert predictor.predict(["what a happy day"], pairs=["same"]).labels == ["pos"]
    with pytest.raises(DataError, match="classifies single texts"):
        textsift.load(model).predict(["what a happy day"], pairs=["same"])


# --- 5. a declared label with no examples --------------------------------------------------------------------


def test_label_without_examples_is_named_at_train_and_evaluate(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    result = run("train", "--train", str(data), "--test", str(data), "--model", "bag", "-o", str(tmp_path / "run"),
                 "--set", "data.labels=[neg,pos,neutral]", "--set", "trainer.epochs=2")
    assert result.exit_code == 0, result.stderr
    flat = " ".join(result.stderr.split())
    assert "'neutral'" in flat and "no training example has it" in flat
    info = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert info["labels_without_examples"] == ["neutral"] and info["macro_average_labels"] == ["neg", "pos", "neutral"]
    assert "neutral" in (tmp_path / "run" / "report" / "report.html").read_text() and "count as 0" in info["macro_average_note"]
    result = run("evaluate", str(tmp_path / "run"), str(data))
    assert result.exit_code == 0 and "no examples of the label(s) neutral" in " ".join(result.stderr.split())


# --- 6. fields of any size -----------------------------------------------------------------------------------


def test_a_field_over_the_csv_limit_reads_in_train_evaluate_and_predict(model, tmp_path):
    huge = "happy " * 40_000  # 240,000 characters: over the csv module's default 131,072
    data = tmp_path / "big.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",{l}\n' for t, l in TINY) + f'"{huge}",pos\n')
    assert run("predict", str(model), str(data)).exit_code == 0
    assert run("evaluate", str(model), str(data), "--json").exit_code == 0
    result = run("-q", "train", "--train", str(data), "--model", "bag", "-o", str(tmp_path / "run"), "--set", "trainer.epochs=1")
    assert result.exit_code == 0, result.stderr


# --- 7. damaged model directories name the file --------------------------------------------------------------


@pytest.mark.parametrize("name,content,expected", [
    ("labels.json", "{not json", "labels.json is damaged: not JSON"),
    ("labels.json", '["neg", "pos"]', "labels.json is damaged: expected the label set"),
    ("labels.json", '{"labels": ["neg"]}', "labels.json is damaged: expected the label set"),
    ("labels.json", '{"labels": ["a", "b", "c"]}', "lists 3 labels, but model.safetensors has 2 outputs"),
    ("meta.json", "", "meta.json is damaged: not JSON"),
    ("meta.json", "[1, 2]", "meta.json is damaged: expected a JSON object"),
])
def test_damaged_model_directory(model, tmp_path, name, content, expected):
    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    (broken / name).write_text(content)
    message = error_of(run("predict", str(broken), "-", input="happy\n"))
    assert expected in message and str(broken) in message and name in message


# --- 8. reports never mix --------------------------------------------------------------------------------------


def test_evaluate_report_refuses_an_existing_folder_and_replaces_it_whole(model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    report = tmp_path / "report"
    report.mkdir()
    (report / "notes.txt").write_text("mine")
    (report / "metrics.json").write_text("another model's")
    message = error_of(run("evaluate", str(model), str(data), "--report", str(report)))
    assert "already holds files" in message and "--overwrite" in message
    assert (report / "metrics.json").read_text() == "another model's"
    assert run("evaluate", str(model), str(data), "--report", str(report), "--overwrite").exit_code == 0
    assert not (report / "notes.txt").exists()  # replaced whole: nothing of the old folder is left
    assert json.loads((report / "report.json").read_text())["files"] == sorted(p.name for p in report.iterdir())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


# --- 10./11. the command line -----------------------------------------------------------------------------------


def test_quiet_and_verbose_after_the_subcommand(model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    loud = run("train", "--train", str(data), "--model", "bag", "-o", str(tmp_path / "a"), "--set", "trainer.epochs=1", "--no-report")
    quiet = run("train", "--train", str(data), "--model", "bag", "-o", str(tmp_path / "b"), "--set", "trainer.epochs=1", "--no-report", "-q")
    assert loud.exit_code == 0 and quiet.exit_code == 0, quiet.output
    assert "Tokenizer" in loud.stderr and "Tokenizer" not in quiet.stderr
    assert run("predict", str(model), "-", "-v", input="happy\n").exit_code == 0
    assert hoist_global_flags(["train", "-q", "--set", "x=1", "--", "-v"]) == ["-q", "train", "--set", "x=1", "--", "-v"]
    proc = subprocess.run([sys.executable, "-m", "textsift", "predict", str(model), "-", "--quiet"], input="happy\n",
                          capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["label"] == "pos"


def test_binary_file_named_csv_is_not_a_text_file(model, tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(bytes(range(256)) * 4)
    message = error_of(run("predict", str(model), str(data)))
    assert "not a text file" in message and "latin-1" not in message


def test_readme_recommended_settings_match_config_show(tmp_path):
    """The README's config block says it shows the bag model's recommended settings: each must be what config show gives."""
    from textsift.config import resolve

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Config\n.*?```yaml\n(.*?)```", readme, re.S).group(1)
    documented = yaml.safe_load(block)
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    resolved = resolve({"data": {"train": str(data)}}).model_dump(mode="json")

    def leaves(node, path=()):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from leaves(value, (*path, key))
        else:
            yield path, node

    checked = 0
    for path, value in leaves(documented):
        if path[:2] in (("data", "train"), ("data", "validation"), ("data", "test")):
            continue
        actual = resolved
        for key in path:
            actual = actual[key]
        assert actual == value, f"README says {'.'.join(path)}: {value!r}; config show gives {actual!r}"
        checked += 1
    assert checked > 20


# --- bad inputs across commands: a short error naming what is wrong, never a traceback ---------------------------


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bad")
    write_jsonl(tmp / "good.jsonl", [{"text": t, "label": l} for t, l in TINY])
    (tmp / "wrong_columns.csv").write_text("sentence,category\nhappy,pos\nsad,neg\n")
    (tmp / "ragged.csv").write_text("text,label\nhappy,pos,extra\n")
    (tmp / "binary.csv").write_bytes(bytes(range(256)))
    (tmp / "latin.csv").write_bytes("text,label\nna\xefve,pos\nsad,neg\n".encode("latin-1"))
    (tmp / "bad.jsonl").write_text('{"text": "a", "label": "pos"}\n{"text": \n')
    (tmp / "notes.txt").write_text("text,label\n")
    (tmp / "damaged.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (tmp / "empty.csv").write_text("")
    (tmp / "a_file").write_text("x")
    return tmp


BAD = [
    # (command line with {m} = model dir, {d} = the bad-input folder; the words the error must contain)
    (["predict", "{m}", "{d}/missing.csv"], ["missing.csv", "does not exist"]),
    (["predict", "{m}", "{d}/wrong_columns.csv"], ["wrong_columns.csv", "no column 'text'", "--text-column", "sentence"]),
    (["predict", "{m}", "{d}/ragged.csv"], ["ragged.csv, row 2", "3 fields, expected 2"]),
    (["predict", "{m}", "{d}/binary.csv"], ["binary.csv", "not a text file"]),
    (["predict", "{m}", "{d}/latin.csv"], ["latin.csv, line 2", "--encoding"]),
    (["predict", "{m}", "{d}/bad.jsonl"], ["bad.jsonl, line 2", "not valid JSON"]),
    (["predict", "{m}", "{d}/notes.txt"], ["notes.txt", "--reader"]),
    (["predict", "{m}", "{d}/damaged.csv.gz"], ["damaged.csv.gz", "cannot read"]),
    (["predict", "{m}", "{d}/good.jsonl", "--on-empty", "drop"], ["--on-empty", "error, skip, predict"]),
    (["predict", "{m}", "{d}/good.jsonl", "-o", "{d}/out.txt"], ["out.txt", ".csv or .jsonl"]),
    (["predict", "{d}/nowhere", "{d}/good.jsonl"], ["nowhere", "does not exist"]),
    (["predict", "{d}/a_file", "{d}/good.jsonl"], ["a_file", "is a file"]),
    (["evaluate", "{m}", "{d}/empty.csv"], ["empty.csv", "empty"]),
    (["evaluate", "{m}", "{d}/wrong_columns.csv", "--text-column", "sentence"], ["no column 'label'", "--label-column", "category"]),
    (["evaluate", "{m}", "{d}/good.jsonl", "--report", "{d}/a_file"], ["a_file", "is a file"]),
    (["evaluate", "{m}", "{d}/good.jsonl", "--delimiter", ";", "--reader", "jsonl"], ["--delimiter", "jsonl reader"]),
    (["train", "--train", "{d}/missing.csv", "-o", "{d}/run1"], ["missing.csv", "does not exist"]),
    (["train", "--train", "{d}/wrong_columns.csv", "-o", "{d}/run2"], ["wrong_columns.csv", "no column 'text'", "data.reader.text_column"]),
    (["train", "{d}/good.jsonl", "-o", "{d}/run3"], ["good.jsonl", "--train"]),
    (["train", "--train", "{d}/good.jsonl", "-o", "{d}/a_file"], ["a_file"]),
]


@pytest.mark.parametrize("args,words", BAD, ids=[f"{i}-{a[0]}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_gives_a_short_error_naming_it(model, bad_inputs, args, words):
    result = run(*(a.format(m=model, d=bad_inputs) for a in args))
    message = error_of(result)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_resume_names_the_decisive_difference_first(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    common = ["--train", str(data), "-o", str(tmp_path / "run"), "--no-report"]
    assert run("-q", "train", *common, "--model", "bag", "--set", "trainer.epochs=1").exit_code == 0
    message = error_of(run("train", *common, "--model", "cnn", "--set", "trainer.epochs=2", "--resume"))
    differences = message.split("started with (", 1)[1]
    assert differences.startswith("model.type: 'bag' -> 'cnn'"), message
    assert "more)" in differences or "trainer.epochs" in differences


def test_compare_and_tune_refuse_a_folder_they_did_not_create(model, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not touch")
    message = error_of(run("compare", str(model), str(model), "-o", str(foreign)))
    assert "mine' already holds files" in message and "--overwrite" in message
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{train: {data}}}\nmodel: {{type: bag}}\n")
    space = tmp_path / "space.yaml"
    space.write_text("trainer.optimizer.lr: [0.01, 0.02]\n")
    message = error_of(run("tune", str(config), "--space", str(space), "--trials", "1", "-o", str(foreign)))
    assert "mine' already holds files;" in message
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]


def test_a_wrong_data_source_type_reads_plainly(tmp_path):
    from textsift.config import resolve
    from textsift.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        resolve({"data": {"train": 5}})
    assert "expected a file path or {type: DATASET, ...}, got int" in str(err.value) and "{{" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        resolve({"data": {"train": "x.jsonl"}, "trainer": {"scheduler": 3}})
    assert "expected a mapping like {type: NAME, ...settings}, got int" in str(err.value)


# --- found by review -----------------------------------------------------------------------------------------------


def test_top_k_above_the_label_count_keeps_columns_aligned(model, tmp_path):
    out = tmp_path / "p.csv"
    data = tmp_path / "in.csv"
    data.write_text("text\nwhat a happy day\n")
    assert run("predict", str(model), str(data), "--top-k", "5", "-o", str(out)).exit_code == 0
    rows = list(csv.reader(out.open(newline="")))
    assert rows[0] == ["row", "text", "label", "top1", "top2", "top1_probability", "top2_probability"]
    assert len(rows[1]) == len(rows[0]) and rows[1][3] == "pos" and float(rows[1][5]) > 0.5


def test_keep_columns_and_label_column_clash_only_with_written_columns(model, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("text,topic,label\nwhat a happy day,films,pos\n")
    result = run("predict", str(model), str(data), "--keep-columns", "topic", "--label-column", "label")
    assert "--label-column label: the output already has a 'label' column" in error_of(result)
    record = json.loads(run("predict", str(model), str(data), "--keep-columns", "topic").stdout)
    assert record["topic"] == "films" and record["label"] == "pos"


def test_pair_model_blank_stdin_line_follows_the_empty_policy(pair_model):
    result = run("predict", str(pair_model), "-", "--on-empty", "skip", input="what a happy day\tsame\n\nawful film\tother\n")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r.get("skipped") for r in records] == [None, "empty text", None]


def test_evaluate_empty_text_error_names_no_option_evaluate_lacks(model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "happy", "label": "pos"}, {"text": " ", "label": "neg"}])
    message = error_of(run("evaluate", str(model), str(data)))
    assert "row 2" in message and "--on-empty" not in message


def test_utf16_file_read_as_utf8_is_named_as_utf16(model, tmp_path):
    data = tmp_path / "excel.tsv"
    data.write_bytes("text\nwhat a happy day\n".encode("utf-16"))
    message = error_of(run("predict", str(model), str(data)))
    assert "looks like UTF-16" in message and "--encoding" in message
    assert json.loads(run("predict", str(model), str(data), "--encoding", "utf-16").stdout)["label"] == "pos"


def test_csv_rows_are_spreadsheet_rows_and_leading_blank_lines_are_skipped(model, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text('\ntext,id\n"what a\nhappy day",1\n"   ",2\n')
    message = error_of(run("predict", str(model), str(data)))
    assert "in.csv, row 3:" in message  # the second record, whatever lines the first one spans
    records = [json.loads(line) for line in run("predict", str(model), str(data), "--on-empty", "skip").stdout.splitlines()]
    assert [r["row"] for r in records] == [2, 3]


def test_null_text_follows_the_empty_policy(model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "happy"}, {"text": None}])
    assert "row 2" in error_of(run("predict", str(model), str(data)))
    records = [json.loads(line) for line in run("predict", str(model), str(data), "--on-empty", "skip").stdout.splitlines()]
    assert [r.get("skipped") for r in records] == [None, "empty text"]
