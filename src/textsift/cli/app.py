"""The typer application, verbosity, and the one place errors are turned into a single line."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from textsift.errors import TextsiftError

app = typer.Typer(
    name="textsift", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Train, evaluate and use text classifiers from one config file.",
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect the config schema and resolved configs.")
app.add_typer(config_app, name="config")

console = Console()  # stdout: results
err_console = Console(stderr=True)  # stderr: logs, progress, errors


class Settings:
    verbosity: int = 0  # -1 quiet, 0 default, 1 verbose


def setup_logging(verbosity: int) -> None:
    Settings.verbosity = verbosity
    level = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}[max(-1, min(1, verbosity))]
    root = logging.getLogger("textsift")
    root.handlers.clear()
    handler = RichHandler(console=err_console, show_path=verbosity > 0, show_time=verbosity > 0, markup=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    handler.setLevel(level)
    root.propagate = False
    import warnings

    if verbosity < 1:
        warnings.filterwarnings("ignore", category=UserWarning)


@app.callback()
def _main(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and results."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    setup_logging(-1 if quiet else (1 if verbose else 0))


F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Print a :class:`TextsiftError` as one line on stderr and exit 1; no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TextsiftError as exc:
            message = str(exc)
            lines = message.splitlines() or [type(exc).__name__]
            err_console.print(Text.assemble(("error:", "bold red"), f" {lines[0]}"), highlight=False, soft_wrap=True)
            for line in lines[1:]:
                err_console.print(f"       {line}", markup=False, highlight=False, soft_wrap=True)
            if Settings.verbosity > 0:
                err_console.print_exception()
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: the last checkpoint is kept; continue with --resume.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")


def hoist_global_flags(args: list[str]) -> list[str]:
    """Move ``-q``/``-v`` given after the subcommand to the front, so they work in both places.

    Only whole arguments count, and nothing after ``--`` or given as the value of an option.
    """
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
    rest = [a for a in args[:end] if a not in GLOBAL_FLAGS]
    return flags + rest + args[end:]


def main(args: list[str] | None = None) -> None:
    from textsift.cli import commands  # noqa: F401  (registers the commands)

    app(args=hoist_global_flags(sys.argv[1:] if args is None else args), prog_name="textsift")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
