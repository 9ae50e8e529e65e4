"""Imports every command module so that each registers itself on the app."""

from textsift.cli import card_cmd, compare, config_cmd, cv, debug_cmd, evaluate, export_cmd, inspect_cmd, predict, serve_cmd, train, tune, workflow_cmd  # noqa: F401
from textsift.cli import distill_cmd, prune_cmd  # noqa: F401  (compression: textsift distill, textsift prune)
