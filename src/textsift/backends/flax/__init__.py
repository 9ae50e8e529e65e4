"""The Flax backend: NNX networks built from the same model specs as torch, trained with optax.

``backend: flax`` in a config selects it (models bag, cnn, lstm, gru; single- and multilabel). What it holds:

- ``networks.py``: the NNX networks of the specs (padding masked everywhere);
- ``shapes.py``: padded widths in a few buckets and fixed batch sizes, so a run compiles a bounded number of times;
- ``optim.py``: losses and optimizers of the trainer settings (AdamW, Adam, SGD, SparseAdamW's lazy rows) in optax;
- ``parallel.py``: data parallelism over the local devices with ``jax.sharding`` (a ``data`` mesh axis);
- ``weights.py``: the flattened NNX state as safetensors (weights and resumable checkpoints);
- ``trainer.py``: the jitted step and the loop, driving the shared callbacks;
- ``runtime.py``: :class:`FlaxRuntime`, the runtime the Predictor uses for a flax model directory.

It imports the backend-neutral core and never the torch backend; its inference path imports no torch.
"""
