"""Imports every command module so that each registers itself on the app."""

from textsift.cli import config_cmd, evaluate, inspect_cmd, predict, train  # noqa: F401
