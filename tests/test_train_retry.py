"""A train that stops before training (a data error) leaves nothing that blocks its retry; a real run stays protected."""

from __future__ import annotations

from conftest import write_jsonl
from test_cli import one_error_line, run

FAST = ["--model", "bag", "--set", "trainer.epochs=1"]


def train(data, out, *extra: str):
    return run("train", "--train", str(data), "-o", str(out), *FAST, *extra)


def test_a_wrong_column_fails_writes_nothing_and_the_fixed_command_succeeds(tmp_path, tiny_jsonl):
    out = tmp_path / "run"
    line = one_error_line(train(tiny_jsonl, out, "--set", "data.reader.text_column=sentence"))
    assert "no column 'sentence' (data.reader.text_column)" in line
    assert not out.exists()
    result = train(tiny_jsonl, out)
    assert result.exit_code == 0, result.output
    assert (out / "model" / "model.safetensors").is_file()


def test_a_missing_data_file_fails_and_the_retry_with_resume_is_not_told_the_config_differs(tmp_path, tiny_jsonl):
    out = tmp_path / "run"
    assert "does not exist" in one_error_line(train(tmp_path / "typo.jsonl", out))
    assert not out.exists()
    result = train(tiny_jsonl, out)
    assert result.exit_code == 0, result.output


def test_a_config_error_never_creates_the_run_directory(tmp_path, tiny_jsonl):
    out = tmp_path / "run"
    assert "trainer.epochs" in one_error_line(train(tiny_jsonl, out, "--set", "trainer.epochs=zero"))
    assert not out.exists()


def test_a_directory_left_by_a_run_that_never_trained_is_reused_with_or_without_resume(tmp_path, tiny_jsonl):
    # what a run that stopped before its first step leaves: its config (here another one) and its log
    for extra in ([], ["--resume"]):
        out = tmp_path / f"run{len(extra)}"
        out.mkdir()
        (out / "config.yaml").write_text("data: {train: old.jsonl, reader: {text_column: sentence}}\n")
        (out / "train.log").write_text("... ERROR no column 'sentence'\n")
        result = train(tiny_jsonl, out, *extra)
        assert result.exit_code == 0, result.output + result.stderr
        assert (out / "model" / "model.safetensors").is_file()
        assert str(tiny_jsonl) in (out / "config.yaml").read_text()
        log = (out / "train.log").read_text()
        assert "never started training: reusing it" in log and "Train: 14 examples" in log  # logged before the directory was free, kept


def test_a_finished_run_is_still_refused_without_resume(tmp_path, tiny_jsonl):
    out = tmp_path / "run"
    assert train(tiny_jsonl, out).exit_code == 0
    weights = (out / "model" / "model.safetensors").read_bytes()
    assert "already holds files. Pass --resume" in one_error_line(train(tiny_jsonl, out))
    assert "config differs" in one_error_line(train(tiny_jsonl, out, "--resume", "--set", "seed=1"))
    assert (out / "model" / "model.safetensors").read_bytes() == weights


def test_resume_of_a_finished_run_keeps_its_model_directory_and_exports(tmp_path, tiny_jsonl):
    """The error for an occupied --output says to pass --resume; on a finished run that went through the end of
    training again and rewrote the model directory, deleting the ONNX graph exported into it."""
    out = tmp_path / "run"
    assert train(tiny_jsonl, out).exit_code == 0
    weights = (out / "model" / "model.safetensors").read_bytes()
    (out / "model" / "model.onnx").write_bytes(b"exported earlier")
    report = (out / "report" / "report.html").stat().st_mtime_ns
    result = train(tiny_jsonl, out, "--resume")
    assert result.exit_code == 0, result.output + result.stderr
    assert (out / "model" / "model.onnx").read_bytes() == b"exported earlier"
    assert (out / "model" / "model.safetensors").read_bytes() == weights
    assert (out / "report" / "report.html").stat().st_mtime_ns == report
    assert "finished earlier: nothing left to resume" in " ".join((result.stdout + result.stderr).split())


def test_a_directory_with_other_files_is_still_refused(tmp_path, tiny_jsonl):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("data: {train: x.jsonl}\n")
    (out / "notes.txt").write_text("mine")
    assert "already holds files" in one_error_line(train(tiny_jsonl, out))
    assert (out / "notes.txt").read_text() == "mine"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "", "label": "a"}])
    assert "row 1: the text (column 'text') is empty" in one_error_line(train(bad, tmp_path / "other"))
