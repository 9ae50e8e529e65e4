"""Backends: each a leaf that builds, trains and runs the networks of the backend-neutral model specs.

``torch/`` holds the torch networks (beside their specs), the training loop, SparseAdamW, the checkpoint
format, DDP, the torch runtime and the ONNX export of the torch networks; ``flax/`` the NNX networks, the jitted
step and loop, data parallelism, weights and the flax runtime; ``onnx/`` the ONNX Runtime runtime and int8
quantization (inference only), and imports no torch. Backends never import each other.
"""
