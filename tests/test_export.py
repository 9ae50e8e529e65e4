"""ONNX export and the onnx runtime: every model type exports, matches torch, and predicts without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import textsift  # noqa: E402
from textsift.config import resolve  # noqa: E402
from textsift.errors import ConfigError, ModelDirError  # noqa: E402
from textsift.inference.export import export_model_dir  # noqa: E402
from textsift.inference.runtime import choose_runtime  # noqa: E402

from conftest import TINY, assert_only_safe_files, model_settings, tiny_config, write_jsonl  # noqa: E402

MODELS = ["bag", "linear", "linear_bag", "cnn", "lstm", "gru", "transformer"]
#: small networks: the export traces the same code whatever the sizes
SMALL = {"cnn": {"embed_dim": 16, "channels": 16}, "lstm": {"embed_dim": 16, "hidden_size": 8, "layers": 2},
         "gru": {"embed_dim": 16, "hidden_size": 8, "pooling": "last"}, "bag": {"embed_dim": 16}, "linear_bag": {"embed_dim": 16}}
LONG = " ".join(t for t, _ in TINY) * 4  # longer than a words tokenizer's max_length of 64 (set below)
TEXTS = [t for t, _ in TINY] + ["happy", "an unseen text about nothing at all", LONG, "zzz"] + [f"{t} {t}" for t, _ in TINY[:3]]


@pytest.fixture(scope="module")
def export_of(tmp_path_factory, tiny_bert):
    """``export_of(name)``: a model of that type trained 2 epochs on the tiny data and exported with its int8 copy
    (once per module)."""
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            tmp = tmp_path_factory.mktemp(f"export-{name}")
            data = write_jsonl(tmp / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])
            raw = tiny_config(data, name, trainer__epochs=2)
            raw["model"] = {**model_settings(name, tiny_bert), **SMALL.get(name, {})}
            if name in ("cnn", "lstm", "gru"):
                raw["tokenizer"] = {"type": "words", "max_length": 64}
            if name == "transformer":  # the tiny encoder has 64 positions
                raw["tokenizer"] = {"type": "pretrained", "max_length": 64}
            result = textsift.train(resolve(raw), tmp / "run", report=False)
            export_model_dir(result.model_dir, quantize="int8")
            made[name] = result.model_dir
        return made[name]

    return make


@pytest.fixture(params=MODELS)
def exported(request, export_of):
    return request.param, export_of(request.param)


def test_export_writes_checked_graphs_and_a_manifest(exported):
    name, model_dir = exported
    assert_only_safe_files(model_dir)  # model.onnx and model.int8.onnx parse as ONNX, nothing is a pickle
    manifest = json.loads((model_dir / "onnx.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "model.int8.onnx"}
    assert manifest["files"]["model.onnx"]["parity_max_probability_diff"] <= 1e-4
    quantization = manifest["files"]["model.int8.onnx"]["quantization"]
    assert quantization["per_channel"] is True and quantization["activations"] == "auto"
    # calibrated on the texts of the model's own data file (it has no validation file), 2 batches of its 12 texts
    assert Path(quantization["calibration_file"]).name == "tiny.jsonl" and quantization["calibration_batches"] >= 1
    # every embedding table gets a scale per row (linear: its weights and bias tables); the transformer's products
    # with weight matrices (6 per layer, 2 layers) a scale per token or per tensor, as their calibration tokens say
    assert quantization["per_row_tables"] == {"linear": 2, "linear_bag": 3, "transformer": 3}.get(name, 1), quantization
    products = quantization["per_token_matmuls"] + quantization["per_tensor_matmuls"]
    assert products == (12 if name == "transformer" else 0), quantization
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".")]  # no temporary files left
    import onnx

    for value in onnx.load(str(model_dir / "model.onnx")).graph.input:  # batch and sequence axes are symbolic
        assert all(d.dim_param and not d.dim_value for d in value.type.tensor_type.shape.dim), (name, value)


def test_onnx_matches_torch_at_every_batch_size_and_length(exported):
    """fp32 probabilities within 1e-4 of torch and the same labels, in batches of 1, 3 and 17 texts of 1 token to
    the tokenizer's maximum (the export itself checked random ids the same way)."""
    from textsift.data.loading import examples_from_texts

    name, model_dir = exported
    torch_predictor = textsift.load(model_dir, runtime="torch")
    onnx_predictor = textsift.load(model_dir, runtime="onnx")
    int8_predictor = textsift.load(model_dir, runtime="onnx-int8")
    assert (onnx_predictor.runtime.name, int8_predictor.runtime.name) == ("onnx", "onnx-int8")
    lengths = torch_predictor.encode(examples_from_texts(TEXTS)).ids.lengths
    assert lengths.min() <= 3
    if name not in ("bag", "linear", "linear_bag"):  # n-gram features have no small maximum
        assert lengths.max() == torch_predictor.config.tokenizer.max_length  # the long text is cut at the maximum
    for batch_size in (1, 3, 17):
        expected = torch_predictor.predict(TEXTS, batch_size=batch_size)
        got = onnx_predictor.predict(TEXTS, batch_size=batch_size)
        np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-4, err_msg=f"{name}, batch {batch_size}")
        assert got.labels == expected.labels, (name, batch_size)
        int8 = int8_predictor.predict(TEXTS, batch_size=batch_size).probabilities
        assert int8.shape == expected.probabilities.shape and np.isfinite(int8).all()


def test_auto_prefers_the_int8_graph_then_fp32_then_torch(exported, tmp_path):
    _, model_dir = exported
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    assert choose_runtime(copy).name == "onnx-int8"
    (copy / "model.int8.onnx").unlink()
    assert choose_runtime(copy).name == "onnx"
    (copy / "model.onnx").unlink()
    assert textsift.load(copy).runtime.name == "torch"


FORBIDDEN = ("torch", "sklearn", "matplotlib", "transformers", "textsift.training")


@pytest.mark.parametrize("name", ["bag", "transformer"])
def test_the_onnx_path_imports_no_torch(export_of, name):
    """Predicting with the onnx runtime, in Python and on the command line, imports neither torch, scikit-learn,
    matplotlib, transformers nor the training code."""
    model_dir = export_of(name)
    code = f"""
import io, sys
import textsift
print(textsift.load({str(model_dir)!r}, runtime="onnx").predict(["a happy day"]).labels)
sys.stdin = io.StringIO("a happy day\\n")
from textsift.cli import main
try:
    main(["predict", {str(model_dir)!r}, "-", "--runtime", "onnx"])
except SystemExit as exc:
    assert not exc.code, exc.code
print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-1] == "[]", out
    assert json.loads(out[-2])["label"] in ("pos", "neg")


def test_predict_and_evaluate_choose_the_runtime(export_of, tmp_path):
    from typer.testing import CliRunner

    from textsift.cli import commands  # noqa: F401
    from textsift.cli.app import app

    model_dir = export_of("bag")
    data = write_jsonl(tmp_path / "test.jsonl", [{"text": t, "label": l} for t, l in TINY])
    runner = CliRunner()
    metrics = {}
    for runtime in ("torch", "onnx", "onnx-int8", "auto"):
        result = runner.invoke(app, ["-q", "evaluate", str(model_dir), str(data), "--json", "--runtime", runtime])
        assert result.exit_code == 0, result.output
        metrics[runtime] = json.loads(result.stdout)["test/accuracy"]
        result = runner.invoke(app, ["predict", str(model_dir), "-", "--runtime", runtime], input="a happy day\n")
        assert result.exit_code == 0 and json.loads(result.stdout)["label"] in ("pos", "neg"), result.output
    assert metrics["onnx"] == metrics["torch"]
    info = json.loads(runner.invoke(app, ["inspect", str(model_dir), "--json"]).stdout)
    runtimes = info["runtimes"]
    assert runtimes["auto"] == "onnx-int8" and runtimes["available"] == ["onnx-int8", "onnx", "torch"]
    assert runtimes["onnx"]["current"] and runtimes["onnx"]["files"]["model.int8.onnx"]["quantization"]["method"] == "dynamic"
    assert {"model.onnx", "model.int8.onnx", "onnx.json"} <= set(info["files"])
    text = " ".join(runner.invoke(app, ["inspect", str(model_dir)], terminal_width=400).stdout.split())
    quantization = runtimes["onnx"]["files"]["model.int8.onnx"]["quantization"]
    assert (f"activations: {quantization['per_token_matmuls']} products per token, {quantization['per_tensor_matmuls']} per "
            "tensor (auto, calibrated on tiny.jsonl)") in text, text


def one_line_error(*args: str) -> str:
    from typer.testing import CliRunner

    from textsift.cli import commands  # noqa: F401
    from textsift.cli.app import app

    result = CliRunner().invoke(app, list(args), input="a happy day\n")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.stderr
    return " ".join(result.stderr.split())


def test_bad_model_directories_and_graphs_are_one_line_errors(export_of, tmp_path):
    source = export_of("bag")
    model_dir = tmp_path / "model"
    shutil.copytree(source, model_dir)
    (model_dir / "model.onnx").write_bytes(b"not a graph")
    assert "model.onnx is damaged: ONNX Runtime cannot load it" in one_line_error("predict", str(model_dir), "-", "--runtime", "onnx")
    (model_dir / "model.int8.onnx").unlink()
    message = one_line_error("predict", str(model_dir), "-", "--runtime", "onnx-int8")
    assert "no model.int8.onnx for runtime 'onnx-int8'" in message and "textsift export" in message and "--quantize int8" in message
    assert "Did you mean 'onnx'?" in one_line_error("predict", str(model_dir), "-", "--runtime", "onxx")
    (model_dir / "model.safetensors").unlink()
    assert "missing model.safetensors" in one_line_error("export", str(model_dir), "--format", "onnx")
    shutil.copy(source / "model.safetensors", model_dir / "model.safetensors")
    (model_dir / "config.yaml").write_text("model: [unclosed")
    assert "config.yaml is damaged" in one_line_error("export", str(model_dir), "--format", "onnx")
    assert "--format: expected one of onnx" in one_line_error("export", str(source), "--format", "tflite")
    assert "--quantize: expected one of int8" in one_line_error("export", str(source), "--quantize", "int4")
    message = one_line_error("export", str(source), "--quantize", "int8", "--int8-activations", "per_row")
    assert "--int8-activations: expected one of auto, per_token, per_tensor, got 'per_row'" in message
    message = one_line_error("export", str(source), "--quantize", "int8", "--int8-calibration", str(model_dir / "nowhere.csv"))
    assert "--int8-calibration" in message and "nowhere.csv: no such file" in message
    message = one_line_error("export", str(source), "--int8-calibration", str(source / "config.yaml"))
    assert "--int8-calibration is for --quantize int8" in message
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".")]


def test_without_onnxruntime_the_error_names_the_extra(export_of, monkeypatch):
    model_dir = export_of("bag")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # importlib.util.find_spec now finds nothing
    with pytest.raises(ConfigError, match=r"needs the package onnxruntime, which is not installed: pip install 'textsift\[onnx\]'"):
        textsift.load(model_dir, runtime="onnx")
    assert textsift.load(model_dir).runtime.name == "torch"  # auto falls back
    with pytest.raises(ConfigError, match=r"pip install 'textsift\[onnx\]'"):
        export_model_dir(model_dir)


def test_a_stale_graph_is_flagged_and_an_old_int8_copy_goes(export_of, tmp_path):
    from textsift.cli.inspect_cmd import runtimes

    model_dir = tmp_path / "model"
    shutil.copytree(export_of("bag"), model_dir)
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # the same weights: still current
    assert runtimes(model_dir)["onnx"]["current"]
    manifest = json.loads((model_dir / "onnx.json").read_text())
    manifest["source"]["fingerprint"] = "0" * 16  # as if exported from other weights
    (model_dir / "onnx.json").write_text(json.dumps(manifest))
    assert not runtimes(model_dir)["onnx"]["current"]
    export_model_dir(model_dir)  # fp32 only: the int8 copy of the other weights is removed
    assert not (model_dir / "model.int8.onnx").exists() and runtimes(model_dir)["onnx"]["current"]


def test_inference_settings_register_every_tokenizer_and_reader():
    """The light config of prediction knows every built-in tokenizer and reader that the full one does."""
    code = """
from textsift import registry
from textsift.inference.settings import load_inference_builtins
load_inference_builtins()
light = (registry.tokenizers.names(), registry.readers.names())
from textsift.config import load_builtins
load_builtins()
print(light == (registry.tokenizers.names(), registry.readers.names()))
"""
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "True"


def test_inference_imports_nothing_from_training_nor_torch():
    """The layers contract for inference: the Predictor, the runtimes' table, the model directory, the onnx backend and
    export's entry point import no training, tuning or workflow code, and no torch (the torch runtime brings it in)."""
    code = """
import sys
import textsift.inference, textsift.inference.export, textsift.modeldir, textsift.predict
import textsift.backends.onnx.runtime, textsift.backends.onnx.quantize
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sklearn", "matplotlib", "transformers")
             or m.startswith(("textsift.training", "textsift.tuning", "textsift.workflow"))))
"""
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_int8_calibrates_on_the_file_given_or_quantizes_every_product_per_token_without_one(export_of, tmp_path):
    import yaml

    model_dir = tmp_path / "model"
    shutil.copytree(export_of("transformer"), model_dir)
    texts = write_jsonl(tmp_path / "calibration.jsonl", [{"text": t} for t in TEXTS])  # texts alone: no labels needed
    quantization = export_model_dir(model_dir, quantize="int8", calibration=texts)["files"]["model.int8.onnx"]["quantization"]
    assert quantization["calibration_file"] == str(texts) and quantization["calibration_batches"] == 1
    config = yaml.safe_load((model_dir / "config.yaml").read_text())
    for split in ("train", "validation", "test"):  # the data the model was trained on is gone from this machine
        if config["data"].get(split):
            config["data"][split] = str(tmp_path / "gone" / f"{split}.jsonl")
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config))
    quantization = export_model_dir(model_dir, quantize="int8")["files"]["model.int8.onnx"]["quantization"]
    assert quantization["calibration_batches"] == 0 and "calibration_file" not in quantization
    assert quantization["per_token_matmuls"] == 12 and "per_tensor_matmuls" not in quantization
    assert len(textsift.load(model_dir, runtime="onnx-int8").predict(TEXTS).labels) == len(TEXTS)


@pytest.mark.parametrize("kernel_size,stride", [(7, 3), (4, 2)])
def test_a_strided_cnn_exports_and_matches_torch(tmp_path, kernel_size, stride):
    """The JAX AI stack's network (kernel 7, stride 3; examples/imdb/torch_cnn.yaml) exports: the block widths are
    ceil(width / stride), which the graph computed with truncating division before (a 1-id text gave an empty
    convolution input and the export stopped)."""
    data = write_jsonl(tmp_path / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])
    raw = tiny_config(data, "cnn", trainer__epochs=1)
    raw["model"] = {"type": "cnn", "embed_dim": 8, "channels": 6, "kernel_size": kernel_size, "stride": stride}
    raw["tokenizer"] = {"type": "words", "max_length": 64}
    model_dir = textsift.train(resolve(raw), tmp_path / "run", report=False).model_dir
    assert export_model_dir(model_dir)["files"]["model.onnx"]["parity_max_probability_diff"] <= 1e-4
    for batch_size in (1, 5):
        expected = textsift.load(model_dir, runtime="torch").predict(TEXTS, batch_size=batch_size)
        got = textsift.load(model_dir, runtime="onnx").predict(TEXTS, batch_size=batch_size)
        np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-4)
        assert got.labels == expected.labels
