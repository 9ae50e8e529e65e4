"""int8 quantization of an exported graph: weights int8 per output channel, activations quantized on the fly.

Three ways to quantize the activations entering a matrix product with a constant weight (``activations``):

* ``"auto"`` (the default): per token where calibration batches show outlier tokens, per tensor elsewhere. For
  each such product, the largest absolute value of each token (row) is measured on the calibration batches; a
  product whose largest token exceeds ``OUTLIER_RATIO`` times the median token's is quantized per token, the others
  per tensor. On MiniLM fine-tuned on emotion that picks 10 of 36 products (the FFN inputs and outputs where [CLS]
  carries values ~5-9x the median token's; the attention products stay below 3.5x): label agreement with fp32 as
  per token everywhere, at the speed of per tensor nearly (BENCHMARKS.md, CPU inference). Without calibration
  batches every product is quantized per token.
* ``"per_token"``: each row (token) of the activations gets its own scale, from its largest
  absolute value. Transformer encoders carry a few huge values on one token ([CLS] reaches ~28 in one channel
  of MiniLM's FFN inputs while the other tokens stay below ~3); one scale for the whole tensor spends the 8 bits
  on that token and rounds every other token ~8x more coarsely. Measured on MiniLM fine-tuned on emotion:
  per-tensor int8 labels agree with fp32 on 98.05% of the test texts, per-token on 99.2%. Each such
  MatMul becomes a small graph (QuantizeLinear per row, ONNX Runtime's MatMulIntegerToFloat, a Mul per row);
  embedding tables (Gather from a constant table) get one int8 scale per row.
* ``"per_tensor"``: ONNX Runtime's dynamic quantization (one scale per activation tensor, and per table).

Everything else ONNX Runtime's dynamic quantizer handles (convolutions, recurrent cells) is quantized by it in
both modes. On a CPU without VNNI (AVX512-VNNI or AVX-VNNI) the weights use 7 bits
(``reduce_range``): the int8 kernels there can overflow with 8.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

#: how activations can be quantized (see the module docstring)
ACTIVATIONS = ("auto", "per_token", "per_tensor")
#: ``auto``: a product is quantized per token when its largest token's largest value exceeds this many times the
#: median token's (MiniLM/emotion: FFN products 4.4-9.1, every other product at most 3.5)
OUTLIER_RATIO = 4.0


def cpu_has_vnni() -> bool:
    """Whether the CPU has the VNNI instructions ONNX Runtime's int8 kernels use (Linux: /proc/cpuinfo; elsewhere: no)."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.system() != "Linux" or not cpuinfo.is_file():
        return False
    flags = set()
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool({"avx512_vnni", "avx_vnni"} & flags)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.ERROR)  # the quantizer logs its progress on the root logger
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _consumers(graph: Any) -> dict[str, int]:
    """How many node inputs read each name (a rewrite decrements what it stops reading)."""
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    return consumers


def _replace_nodes(model: Any, nodes: list[Any], consumers: dict[str, int], inits: dict[str, Any]) -> None:
    """The graph's nodes become ``nodes``; initializers no node reads any more are dropped; the model is checked."""
    import onnx

    graph = model.graph
    unused = {name for name, count in consumers.items() if count == 0 and name in inits}
    kept = [i for i in graph.initializer if i.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)


def per_token_matmuls(model: Any, *, reduce_range: bool = False, only: set[str] | None = None) -> int:
    """Replace, in place, every float MatMul whose second input is a constant 2-D weight by an int8 product with
    per-token activation scales and per-column weight scales (symmetric); returns how many were replaced.
    ``only``: the names of the MatMul nodes to replace (None: every one).

    ``Y = X @ W`` becomes ``Y = ((q - 128) @ Wq * w) * s`` with, for each row of ``X`` (the last axis),
    ``s = max|row| / 127`` and ``q = round(row / s) + 128`` (uint8: ONNX Runtime's fast int8 kernels take uint8 x
    int8; int8 x int8 ran ~20x slower), and for each column of ``W``, ``w = max|column| / k`` and ``Wq = round(W /
    w)`` (int8; ``k`` = 127, or 63 with ``reduce_range``). Rows are quantized by QuantizeLinear along axis 0 and
    the product is ONNX Runtime's MatMulIntegerToFloat (its int32 -> float conversion and column scales fused):
    on MiniLM (emotion, batch 32, 2 threads, quiet machine) the graph ran at 0.52x the per-tensor graph's speed
    (366.6 vs 705.8 examples/s; BENCHMARKS.md, CPU inference), 1.34x the fp32 graph's."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers = _consumers(graph)
    top = 63.0 if reduce_range else 127.0
    shared = [numpy_helper.from_array(np.array([1], np.int64), "textsift_q_axis1"),
              numpy_helper.from_array(np.array([-1, 1], np.int64), "textsift_q_column"),
              numpy_helper.from_array(np.array(1 / 127.0, np.float32), "textsift_q_inv127"),
              numpy_helper.from_array(np.array(1e-12, np.float32), "textsift_q_eps"),
              numpy_helper.from_array(np.array(1.0, np.float32), "textsift_q_one"),
              numpy_helper.from_array(np.array(128, np.uint8), "textsift_q_zp")]
    nodes: list[Any] = []
    replaced = 0
    for node in graph.node:
        if not _is_weighted_matmul(node, inits) or (only is not None and node.name not in only):
            nodes.append(node)
            continue
        weight = inits[node.input[1]]
        w = numpy_helper.to_array(weight)
        w_scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / top  # per output column
        wq = np.clip(np.round(w / w_scale), -top, top).astype(np.int8)
        name = f"textsift_q{replaced}"
        graph.initializer.extend([numpy_helper.from_array(wq, f"{name}_w"), numpy_helper.from_array(w_scale.astype(np.float32), f"{name}_ws"),
                                  numpy_helper.from_array(np.array([-1, w.shape[0]], np.int64), f"{name}_rows"),
                                  numpy_helper.from_array(np.array([w.shape[1]], np.int64), f"{name}_n")])
        x, y = node.input[0], node.output[0]
        n = lambda suffix: f"{name}_{suffix}"  # noqa: E731
        nodes += [  # the rows of X, one scale each: s = max(|row|) / 127; q = round(row / s) + 128 (uint8)
            helper.make_node("Reshape", [x, n("rows")], [n("x2")], name=n("x2")),
            helper.make_node("Abs", [n("x2")], [n("abs")], name=n("abs")),
            helper.make_node("ReduceMax", [n("abs"), "textsift_q_axis1"], [n("max")], name=n("max"), keepdims=0),
            helper.make_node("Mul", [n("max"), "textsift_q_inv127"], [n("s0")], name=n("s0")),
            helper.make_node("Max", [n("s0"), "textsift_q_eps"], [n("s")], name=n("s")),
            helper.make_node("Shape", [n("s")], [n("m")], name=n("m")),
            helper.make_node("Expand", ["textsift_q_zp", n("m")], [n("zp")], name=n("zp")),
            helper.make_node("QuantizeLinear", [n("x2"), n("s"), n("zp")], [n("q")], name=n("q"), axis=0),
            # (q - 128) @ Wq * w, in int32 and converted by ONNX Runtime's fused kernel; then each row times its s
            helper.make_node("MatMulIntegerToFloat", [n("q"), n("w"), "textsift_q_one", n("ws"), "textsift_q_zp"], [n("yw")],
                             name=n("mm"), domain="com.microsoft"),
            helper.make_node("Reshape", [n("s"), "textsift_q_column"], [n("sc")], name=n("sc")),
            helper.make_node("Mul", [n("yw"), n("sc")], [n("y2")], name=n("y2")),
            helper.make_node("Shape", [x], [n("lead")], name=n("lead"), end=-1),
            helper.make_node("Concat", [n("lead"), n("n")], [n("shape")], name=n("shape"), axis=0),
            helper.make_node("Reshape", [n("y2"), n("shape")], [y], name=n("y")),
        ]
        consumers[weight.name] -= 1
        replaced += 1
    if replaced:
        graph.initializer.extend(shared)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        _replace_nodes(model, nodes, consumers, inits)
    return replaced


def per_row_gathers(model: Any, *, reduce_range: bool = False) -> int:
    """Replace, in place, every Gather from a constant 2-D float table along its rows (embedding tables) by a
    Gather from the int8 table times a Gather from its per-row scales; returns how many were replaced.

    ONNX Runtime's quantizer gives a table one scale for all its rows; a row of its own scale keeps the rare
    large rows from coarsening the others (MiniLM/emotion, per-token products: fp32 agreement 99.15% -> 99.2%,
    mean |logit diff| 0.046 -> 0.040; size unchanged)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers = _consumers(graph)
    top = 63.0 if reduce_range else 127.0
    nodes: list[Any] = []
    replaced = 0
    for node in graph.node:
        table = inits.get(node.input[0]) if node.op_type == "Gather" else None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if table is None or table.data_type != TensorProto.FLOAT or len(table.dims) != 2 or axis != 0:
            nodes.append(node)
            continue
        t = numpy_helper.to_array(table)
        scale = np.maximum(np.abs(t).max(axis=1, keepdims=True), 1e-12) / top  # [rows, 1]
        tq = np.clip(np.round(t / scale), -top, top).astype(np.int8)
        name = f"textsift_g{replaced}"
        graph.initializer.extend([numpy_helper.from_array(tq, f"{name}_t"), numpy_helper.from_array(scale.astype(np.float32), f"{name}_s")])
        index, y = node.input[1], node.output[0]
        nodes += [
            helper.make_node("Gather", [f"{name}_t", index], [f"{name}_q"], name=f"{name}_q", axis=0),
            helper.make_node("Cast", [f"{name}_q"], [f"{name}_f"], name=f"{name}_f", to=TensorProto.FLOAT),
            helper.make_node("Gather", [f"{name}_s", index], [f"{name}_rs"], name=f"{name}_rs", axis=0),
            helper.make_node("Mul", [f"{name}_f", f"{name}_rs"], [y], name=f"{name}_y"),
        ]
        consumers[table.name] -= 1
        replaced += 1
    if replaced:
        _replace_nodes(model, nodes, consumers, inits)
    return replaced


def _is_weighted_matmul(node: Any, inits: dict[str, Any]) -> bool:
    """A float MatMul whose second input is a constant 2-D weight (``inits``: the graph's initializers by name)."""
    from onnx import TensorProto

    if node.op_type != "MatMul" or len(node.input) != 2 or node.input[0] in inits:
        return False
    weight = inits.get(node.input[1])
    return weight is not None and weight.data_type == TensorProto.FLOAT and len(weight.dims) == 2


def _weighted_matmuls(model: Any) -> list[Any]:
    """The products int8 quantizes (see :func:`_is_weighted_matmul`)."""
    inits = {i.name: i for i in model.graph.initializer}
    return [node for node in model.graph.node if _is_weighted_matmul(node, inits)]


def outlier_ratios(source: Path, batches: list[dict[str, np.ndarray]], *, num_threads: int | None = None) -> dict[str, float]:
    """For each product int8 quantizes (node name -> ratio): the largest token's largest absolute value over the
    median token's, on the fp32 graph ``source`` run over ``batches`` (its input feeds). A token is a row of the
    product's input (the last axis its features); padded positions (beyond ``lengths``) are left out."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(source))
    nodes = _weighted_matmuls(model)
    names = list(dict.fromkeys(node.input[0] for node in nodes))
    outputs = {o.name for o in model.graph.output}
    for name in names:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inputs = {i.name: np.int64 if i.type == "tensor(int64)" else np.float32 for i in session.get_inputs()}
    token_max: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for batch in batches:
        feeds = {name: np.ascontiguousarray(batch[name], dtype=dtype) for name, dtype in inputs.items()}
        lengths = feeds.get("lengths")
        for name, value in zip(names, session.run(names, feeds)):
            peak = np.abs(value).max(axis=-1)  # each token's largest
            if lengths is not None and peak.ndim == 2 and peak.shape[0] == len(lengths):  # [batch, length]: drop padding
                peak = peak[np.arange(peak.shape[1])[None, :] < lengths[:, None]]
            token_max[name].append(peak.reshape(-1))
    ratios = {}
    for name in names:
        peaks = np.concatenate(token_max[name]) if token_max[name] else np.zeros(0)
        ratios[name] = float(peaks.max() / max(float(np.median(peaks)), 1e-12)) if peaks.size else 0.0
    return {node.name: ratios[node.input[0]] for node in nodes}


def quantize_int8(source: Path, target: Path, *, reduce_range: bool | None = None, activations: str = "auto",
                  calibration: list[dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
    """Write the int8 copy of the graph ``source`` to ``target``; returns the settings it used. ``calibration``:
    input batches of the graph (``auto`` measures each product's outlier tokens on them; without them every
    product is quantized per token)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if activations not in ACTIVATIONS:
        raise ValueError(f"activations: expected one of {', '.join(ACTIVATIONS)}, got {activations!r}")
    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    settings: dict[str, Any] = {"method": "dynamic", "weight_type": "int8", "per_channel": True, "reduce_range": reduce_range,
                                "activations": activations}
    with _quiet(), tempfile.TemporaryDirectory(prefix=".quantize.", dir=Path(target).parent) as tmp:
        if activations in ("auto", "per_token"):
            only = None
            if activations == "auto" and calibration:
                ratios = outlier_ratios(source, calibration)
                only = {name for name, ratio in ratios.items() if ratio > OUTLIER_RATIO}
                settings["outlier_ratio"] = OUTLIER_RATIO
                settings["calibration_batches"] = len(calibration)
            elif activations == "auto":
                settings["calibration_batches"] = 0  # nothing to measure outliers on: every product per token
            model = onnx.load(str(source))
            settings["per_token_matmuls"] = per_token_matmuls(model, reduce_range=reduce_range, only=only)
            if only is not None:
                settings["per_tensor_matmuls"] = len(_weighted_matmuls(model))
            settings["per_row_tables"] = per_row_gathers(model, reduce_range=reduce_range)
            source = Path(tmp) / "per_token.onnx"
            onnx.save(model, str(source))
        # the rest (embedding tables, convolutions, recurrent cells; MatMuls left as float) by ONNX Runtime
        quantize_dynamic(str(source), str(target), per_channel=True, reduce_range=reduce_range, weight_type=QuantType.QInt8)
    return settings
