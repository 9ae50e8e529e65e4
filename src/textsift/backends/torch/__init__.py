"""The torch backend: the runtime over a torch network, and its export to ONNX."""
