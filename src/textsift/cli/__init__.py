"""The command-line interface: the only part of textsift that prints."""

from textsift.cli.app import app, main

__all__ = ["app", "main"]
