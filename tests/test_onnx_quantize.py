"""int8 quantization of ONNX graphs: per-token activation scales and per-row embedding tables, on small graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from textsift.backends.onnx.quantize import OUTLIER_RATIO, outlier_ratios, per_row_gathers, per_token_matmuls, quantize_int8  # noqa: E402

K, N = 64, 48


def matmul_graph(w: np.ndarray) -> onnx.ModelProto:
    """Y = X @ W (constant W) and Z = X @ X^T (two activations: stays float)."""
    nodes = [helper.make_node("MatMul", ["X", "W"], ["Y"], name="linear"),
             helper.make_node("Transpose", ["X"], ["XT"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["X", "XT"], ["Z"], name="scores")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["b", "l", K])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["b", "l", N]),
                               helper.make_tensor_value_info("Z", TensorProto.FLOAT, ["b", "l", "l"])],
                              [numpy_helper.from_array(w, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run(model: onnx.ModelProto | Path, **feeds: np.ndarray) -> list[np.ndarray]:
    source = model if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(str(source) if isinstance(source, Path) else source, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.fixture
def outlier_batch() -> tuple[np.ndarray, np.ndarray]:
    """Activations like a transformer's FFN input: one token ([CLS]) with one value ~10x the rest."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3, 7, K)).astype(np.float32)
    x[:, 0, 5] = 40.0
    return x, rng.normal(0, 0.1, (K, N)).astype(np.float32)


def test_per_token_int8_matmul_follows_every_token_where_one_scale_per_tensor_does_not(outlier_batch, tmp_path):
    x, w = outlier_batch
    model = matmul_graph(w)
    assert per_token_matmuls(model) == 1
    ops = [n.op_type for n in model.graph.node]
    assert "MatMulIntegerToFloat" in ops and ops.count("MatMul") == 1  # the product of two activations stays float
    assert {i.name for i in model.graph.initializer} >= {"textsift_q0_w"} and "W" not in {i.name for i in model.graph.initializer}
    y, z = run(model, X=x)
    expected = x @ w
    np.testing.assert_allclose(z, x @ x.transpose(0, 2, 1), rtol=1e-5)
    rest = np.abs(y - expected)[:, 1:].max() / np.abs(expected[:, 1:]).max()  # the tokens without the outlier
    assert rest < 0.02

    from onnxruntime.quantization import QuantType, quantize_dynamic  # one scale for the whole tensor

    onnx.save(matmul_graph(w), str(tmp_path / "fp32.onnx"))
    quantize_dynamic(str(tmp_path / "fp32.onnx"), str(tmp_path / "tensor.onnx"), per_channel=True, weight_type=QuantType.QInt8)
    y_tensor = run(tmp_path / "tensor.onnx", X=x)[0]
    assert np.abs(y_tensor - expected)[:, 1:].max() / np.abs(expected[:, 1:]).max() > 3 * rest


def test_per_token_handles_a_zero_row_and_reduce_range(outlier_batch):
    x, w = outlier_batch
    x[1, 3] = 0.0  # an all-zero token: no division by zero
    model = matmul_graph(w)
    per_token_matmuls(model, reduce_range=True)
    weights = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "textsift_q0_w"))
    assert weights.dtype == np.int8 and np.abs(weights).max() == 63  # 7 bits without VNNI
    y = run(model, X=x)[0]
    assert np.isfinite(y).all() and np.abs(y[1, 3]).max() == 0.0
    assert np.abs(y - x @ w).max() / np.abs(x @ w).max() < 0.05


def test_per_row_tables_keep_small_rows_exact_beside_large_ones():
    rng = np.random.default_rng(1)
    table = rng.normal(0, 0.05, (50, 16)).astype(np.float32)
    table[7] *= 400.0  # one row far larger than the others
    graph = helper.make_graph([helper.make_node("Gather", ["T", "ids"], ["E"], axis=0)], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "l"])],
                              [helper.make_tensor_value_info("E", TensorProto.FLOAT, ["b", "l", 16])], [numpy_helper.from_array(table, "T")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert per_row_gathers(model) == 1
    ids = np.array([[0, 7, 3], [49, 7, 1]], np.int64)
    got = run(model, ids=ids)[0]
    assert got.shape == (2, 3, 16)
    err = np.abs(got - table[ids]).max(axis=-1) / np.abs(table[ids]).max(axis=-1)  # per row, relative to the row
    assert err.max() <= 0.5 / 127 + 1e-6


def test_quantize_int8_records_its_settings_and_keeps_the_old_mode(outlier_batch, tmp_path):
    x, w = outlier_batch
    onnx.save(matmul_graph(w), str(tmp_path / "fp32.onnx"))
    token = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "token.onnx", reduce_range=False, activations="per_token")
    assert token == {"method": "dynamic", "weight_type": "int8", "per_channel": True, "reduce_range": False,
                     "activations": "per_token", "per_token_matmuls": 1, "per_row_tables": 0}
    tensor = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "tensor.onnx", reduce_range=False, activations="per_tensor")
    assert tensor["activations"] == "per_tensor" and "per_token_matmuls" not in tensor
    ops = {n.op_type for n in onnx.load(str(tmp_path / "tensor.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops  # ONNX Runtime's dynamic quantization, as before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.onnx", "tensor.onnx", "token.onnx"]  # no temporary files
    with pytest.raises(ValueError, match="activations: expected one of auto, per_token, per_tensor, got 'per_row'"):
        quantize_int8(tmp_path / "fp32.onnx", tmp_path / "x.onnx", activations="per_row")


def two_products_graph(k: int = K) -> onnx.ModelProto:
    """Y = X @ W and V = U @ W, with an unused ``lengths`` input as textsift's padded graphs have."""
    w = np.random.default_rng(2).normal(0, 0.1, (k, N)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["X", "W"], ["Y"], name="outliers"), helper.make_node("MatMul", ["U", "W"], ["V"], name="plain")]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "l", k]) for n in ("X", "U")]
    inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT64, ["b"]))
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "l", N]) for n in ("Y", "V")]
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(w, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_auto_quantizes_per_token_only_the_products_whose_calibration_tokens_have_outliers(outlier_batch, tmp_path):
    x, _ = outlier_batch  # token 0 of each text carries a value 40 where the others stay near 1-3
    u = np.random.default_rng(3).normal(0, 1, x.shape).astype(np.float32)
    u[:, 5:, :] = 500.0  # huge values, but only on padded positions (each text has 5 tokens): not outliers
    lengths = np.full(len(x), 5, np.int64)
    onnx.save(two_products_graph(), str(tmp_path / "fp32.onnx"))
    batches = [{"X": x, "U": u, "lengths": lengths}]
    ratios = outlier_ratios(tmp_path / "fp32.onnx", batches)
    assert ratios["outliers"] > 10 and ratios["plain"] < 2.5, ratios
    settings = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "auto.onnx", reduce_range=False, calibration=batches)
    assert settings["activations"] == "auto" and settings["outlier_ratio"] == OUTLIER_RATIO
    assert settings["per_token_matmuls"] == 1 and settings["per_tensor_matmuls"] == 1 and settings["calibration_batches"] == 1
    graph = onnx.load(str(tmp_path / "auto.onnx")).graph
    assert {n.name for n in graph.node if n.op_type == "MatMulIntegerToFloat" and n.name.startswith("textsift_q")} == {"textsift_q0_mm"}
    assert "DynamicQuantizeLinear" in {n.op_type for n in graph.node}  # the plain product: ONNX Runtime's per-tensor
    y, v = run(tmp_path / "auto.onnx", X=x, U=np.random.default_rng(4).normal(0, 1, x.shape).astype(np.float32), lengths=lengths)
    expected = x @ numpy_helper.to_array(two_products_graph().graph.initializer[0])
    assert np.abs(y - expected)[:, 1:].max() / np.abs(expected[:, 1:]).max() < 0.02  # the outlier token spares the rest
    # without calibration batches, every product per token (the accurate choice)
    none = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "none.onnx", reduce_range=False)
    assert none["per_token_matmuls"] == 2 and none["calibration_batches"] == 0 and "per_tensor_matmuls" not in none
