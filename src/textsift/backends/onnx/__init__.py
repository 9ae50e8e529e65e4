"""The ONNX backend: the runtime over an exported graph (ONNX Runtime) and int8 quantization. Imports no torch."""

#: the graphs ``textsift export`` writes into a model directory, and what each is
GRAPHS = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
#: what the export wrote and from which weights: ``textsift inspect`` reads it
MANIFEST = "onnx.json"
