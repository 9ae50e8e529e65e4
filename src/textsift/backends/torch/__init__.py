"""The torch backend: everything that builds, trains and runs a torch network.

- ``networks/``: the torch networks of the model specs (bag, linear, cnn, rnn, transformer, the shared head), each
  module beside the spec it builds from (the spec registers the model type);
- ``trainer.py``: the training step and loop (accumulation, mixed precision, OOM fallback) through the shared
  callbacks, and ``predict_logits``;
- ``optim.py``: SparseAdamW (configs name it ``textsift.training.optim:SparseAdamW``, see that module);
- ``checkpoint.py``: the resumable checkpoint format (one safetensors file); ``distributed.py``: DDP under torchrun;
- ``runtime.py``: the TorchRuntime the Predictor runs; ``onnx_export.py``: the ONNX export of every network.

It imports the backend-neutral core (config, data, text, batching, evaluation, training's callbacks, losses and
schedules) and never another backend.
"""
