"""Backends: each a leaf that runs (and, for torch, builds and trains) the networks of the model specs.

``torch/`` holds the torch runtime and the ONNX export of the torch networks; ``onnx/`` the ONNX Runtime
runtime and int8 quantization, and imports no torch. Backends never import each other.
"""
