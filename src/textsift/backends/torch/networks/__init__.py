"""The torch networks, one module per model family, each beside the spec (settings) it is built from."""
