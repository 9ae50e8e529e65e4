"""Imports every command module so that each registers itself on the app."""

from textsift.cli import compare, config_cmd, cv, evaluate, inspect_cmd, predict, train, tune, workflow_cmd  # noqa: F401
