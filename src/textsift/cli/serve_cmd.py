"""``textsift serve MODEL_DIR``: an HTTP prediction server (FastAPI + uvicorn, or Ray Serve with ``--ray``)."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import tempfile
from pathlib import Path

import typer

from textsift.cli.app import app, err_console, handle_errors
from textsift.errors import ConfigError

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@app.command()
@handle_errors
def serve(
    model_dir: Path = typer.Argument(..., help="Model directory (or the run directory holding model/)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback should have --api-key-file."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to bind."),
    runtime: str = typer.Option("auto", "--runtime", help="torch, onnx, onnx-int8, or auto (the exported graph when there is one)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes (each loads the model; metrics are summed)."),
    max_batch_size: int = typer.Option(64, "--max-batch-size", min=1, help="Texts per forward pass."),
    max_batch_tokens: int = typer.Option(16384, "--max-batch-tokens", min=1, help="Tokens (padding included) per forward pass."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", min=0.0, help="How long a batch waits for more requests."),
    max_queue: int = typer.Option(2048, "--max-queue", min=1, help="Texts waiting per worker; past it requests get 429."),
    max_request_texts: int = typer.Option(256, "--max-request-texts", min=1, help="Texts per request; past it 413."),
    max_body_bytes: int = typer.Option(2 * 1024 * 1024, "--max-body-bytes", min=1, help="Bytes per request body; past it 413."),
    api_key_file: Path | None = typer.Option(None, "--api-key-file", help="A file holding the key every route but /health, /ready needs."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allow browser calls from this origin (repeatable); CORS is off without it."),
    num_threads: int | None = typer.Option(None, "--num-threads", min=1, help="CPU threads of the runtime in each worker."),
    gil_switch_ms: float = typer.Option(0.0, "--gil-switch-ms", min=0.0,
                                        help="Python's thread switch interval in each worker (0, the default: Python's own, "
                                             "5 ms; 0.5 measured no faster, BENCHMARKS.md)."),
    shutdown_timeout: float = typer.Option(30.0, "--shutdown-timeout", min=0.0,
                                           help="On SIGTERM: seconds to finish the requests in flight before exiting."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log every request (uvicorn's access log)."),
    ray: bool = typer.Option(False, "--ray", help="Serve with Ray Serve (replicas, @serve.batch) instead of uvicorn."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="--ray: model replicas."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="--ray: a running Ray cluster (default: RAY_ADDRESS if set, else a local Ray of its own)."),
) -> None:
    """Serve MODEL_DIR over HTTP: POST /predict, /health, /ready, /metrics, /model, a page at /, OpenAPI at /docs."""
    from textsift.util import require_extra

    require_extra("serve", ("fastapi", "uvicorn", "prometheus_client", *(("ray",) if ray else ())), "textsift serve")
    from textsift.serving.app import SETTINGS_ENV, ServeSettings, preflight, read_api_key

    settings = ServeSettings(
        model_dir=model_dir, runtime=runtime, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms, max_queue=max_queue, max_request_texts=max_request_texts, max_body_bytes=max_body_bytes,
        api_key_file=api_key_file.resolve() if api_key_file is not None else None, cors_origins=tuple(cors_origin),
        num_threads=num_threads, gil_switch_ms=gil_switch_ms or None,
    )
    settings = settings.model_copy(update={"model_dir": preflight(settings.model_dir, runtime)})
    if api_key_file is not None:
        read_api_key(api_key_file)  # a missing or empty key file fails now, not in every worker
    elif not is_loopback(host):
        err_console.print(f"[yellow]warning:[/] binding {host} without --api-key-file: anyone who can reach this address "
                          "can use the model. Give --api-key-file, or bind 127.0.0.1.", highlight=False)
    if ray:
        if workers != 1:
            raise ConfigError("--workers is for the uvicorn server; with --ray give --replicas instead.")
        from textsift.serving.ray import run_ray_serve

        run_ray_serve(settings, host=host, port=port, replicas=replicas, address=ray_address,
                      announce=lambda url: err_console.print(f"serving {settings.model_dir} on {url} (Ray Serve, {replicas} replicas); Ctrl-C stops",
                                                             markup=False, highlight=False))
        return
    if replicas != 1 or ray_address is not None:
        raise ConfigError("--replicas and --ray-address are for --ray; without it give --workers.")
    import uvicorn

    metrics_dir = None
    if workers > 1:  # prometheus-client's multiprocess mode: each worker writes its values here, /metrics sums them
        metrics_dir = tempfile.mkdtemp(prefix="textsift-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    err_console.print(f"serving {settings.model_dir} on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''}); "
                      "/ready says when the model is loaded; Ctrl-C stops", markup=False, highlight=False)
    try:
        uvicorn.run("textsift.serving.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    timeout_graceful_shutdown=shutdown_timeout or None, access_log=access_log, log_level="info",
                    server_header=False)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
