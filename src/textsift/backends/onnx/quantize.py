"""int8 dynamic quantization of an exported graph with ONNX Runtime's quantizer.

Weights of MatMul, Gemm, Gather (embedding tables), Conv and the recurrent cells become int8, per output
channel; activations are quantized on the fly. On a CPU without VNNI (AVX512-VNNI or AVX-VNNI) the weights
use 7 bits (``reduce_range``): the u8 x s8 kernels there can overflow with 8.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import warnings
from pathlib import Path
from typing import Any, Iterator


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


def quantize_int8(source: Path, target: Path, *, reduce_range: bool | None = None) -> dict[str, Any]:
    """Write the int8 copy of the graph ``source`` to ``target``; returns the settings it used."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    settings = {"method": "dynamic", "weight_type": "int8", "per_channel": True, "reduce_range": reduce_range}
    with _quiet():
        quantize_dynamic(str(source), str(target), per_channel=True, reduce_range=reduce_range, weight_type=QuantType.QInt8)
    return settings
