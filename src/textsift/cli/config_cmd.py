"""``textsift config schema`` and ``textsift config show CONFIG``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from textsift.cli.app import config_app, handle_errors


@config_app.command("schema")
@handle_errors
def schema() -> None:
    """Print the JSON Schema of a config, with every registered component's settings."""
    from textsift.config import Config, load_builtins

    load_builtins()
    typer.echo(json.dumps(Config.model_json_schema(), indent=1))


@config_app.command("show")
@handle_errors
def show(
    config: Path = typer.Argument(..., help="Config file (YAML or Jsonnet)."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a setting: --set trainer.epochs=5."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of YAML."),
) -> None:
    """Print CONFIG resolved: overrides applied, every default filled in."""
    from textsift.config import config_to_dict, dump_yaml, load_config

    cfg = load_config(config, overrides=list(overrides))
    typer.echo(json.dumps(config_to_dict(cfg), indent=1) if as_json else dump_yaml(cfg), nl=False)
