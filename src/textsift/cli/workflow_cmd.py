"""``textsift run WORKFLOW`` and ``textsift workflow show WORKFLOW``."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from textsift.cli.app import app, console, handle_errors

workflow_app = typer.Typer(no_args_is_help=True, help="Look at workflows: steps, fingerprints, cache status.")
app.add_typer(workflow_app, name="workflow")


@app.command("run")
@handle_errors
def run_workflow(
    workflow: Path = typer.Argument(..., help="Workflow file (YAML or Jsonnet) of named steps."),
    execution_id: str | None = typer.Option(None, "--execution-id", "-e", help="Name of this execution (default: a timestamp)."),
    step: list[str] = typer.Option([], "--step", help="Run only this step and what it needs (repeatable)."),
    force: list[str] = typer.Option([], "--force", help="Recompute this step even if it is cached (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an existing execution id."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a setting: --set steps.model.config.trainer.epochs=3."),
) -> None:
    """Run a workflow: every step whose fingerprint is cached is loaded, the others are computed."""
    from textsift.config import load_builtins
    from textsift.workflow.runner import Workflow

    load_builtins()
    wf = Workflow.load(workflow, overrides)
    execution_id = execution_id or time.strftime("%Y%m%d-%H%M%S")
    execution = wf.run(execution_id, steps=step or None, force=force, resume=resume)
    table = Table(title=Text(f"execution {execution_id}"), header_style="bold")
    for col in ("step", "fingerprint", "cache", "seconds"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for name, r in execution.steps.items():
        table.add_row(Text(name), r.fingerprint[:12], "hit" if r.cache_hit else "computed", f"{r.seconds:.2f}")
    console.print(table)
    console.print(f"record: {execution.directory / 'execution.json'}", markup=False, highlight=False)


@workflow_app.command("show")
@handle_errors
def show(
    workflow: Path = typer.Argument(..., help="Workflow file."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a setting, as for run."),
    as_json: bool = typer.Option(False, "--json", help="Print the steps as JSON."),
) -> None:
    """List the steps with their fingerprint and whether each is cached or stale, and why."""
    from textsift.config import load_builtins
    from textsift.workflow.runner import Workflow

    load_builtins()
    wf = Workflow.load(workflow, overrides)
    plans = wf.plan()
    rows = []
    for name in wf.order:
        node, plan = wf.nodes[name], plans[name]
        status = "cached" if plan.cached else ("always runs" if not node.definition.cache else "stale")
        rows.append({"step": name, "type": node.type, "needs": sorted({str(r) for r in node.refs.values()}),
                     "fingerprint": plan.fingerprint, "status": status, "reason": plan.reason})
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table(title=Text(str(workflow)), header_style="bold")
    for col in ("step", "type", "needs", "fingerprint", "status", "reason"):
        table.add_column(col)
    for row in rows:
        table.add_row(Text(row["step"]), row["type"], Text(", ".join(row["needs"])), row["fingerprint"][:12], row["status"], Text(row["reason"]))
    console.print(table)
