"""Scale-out on Ray: a Ray Serve deployment of the Predictor, and ``predict --ray`` over Ray Data.

:class:`TextsiftDeployment` answers ``POST /predict`` like the uvicorn server (same request schema, limits,
status codes and response; ``/health``, ``/ready`` and ``/model`` too), with replicas and ``@serve.batch``
(its batch size counted in texts) in place of the micro-batcher. :func:`run_ray_serve` is ``textsift serve
--ray``; :func:`predict_dataset` is ``textsift predict --ray``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from textsift.errors import ConfigError

from textsift.serving.app import (
    Encoder, RequestError, ServeSettings, check_request, measure_cost, parse_request, read_api_key, render, warm_up,
)
from textsift.serving.batcher import run_batches, run_jobs

logger = logging.getLogger(__name__)


def _texts(jobs: list[tuple[list[Any], bool, int]]) -> int:
    """A batch's size in texts (each job: one request's part, ``(examples, truncate, first index)``)."""
    return sum(len(job[0]) for job in jobs)


def _forward_batch(encoder: Any, predictor: Any, settings: Any, pass_cost: float | None,
                   jobs: list[tuple[list[Any], bool, int]]) -> list[Any]:
    """The jobs of one ``@serve.batch`` call encoded in one tokenizer call, then run in forward passes together, as
    the uvicorn server's batch thread runs its jobs (:func:`~textsift.serving.batcher.run_jobs`): each job's
    ``(logits, truncated)``, or the :class:`RequestError` of a job whose text is too long (only that request fails)."""
    def forward(parts: list[Any]) -> list[np.ndarray]:
        return run_batches(predictor.runtime.logits, predictor.input_format, parts, settings.max_batch_size,
                           settings.max_batch_tokens, pass_cost=pass_cost)

    return run_jobs([None] * len(jobs), jobs, encoder.many, forward)


def deployment(settings: ServeSettings, replicas: int = 1, num_cpus: float = 1.0) -> Any:
    """The Ray Serve application (``serve.run`` it) serving ``settings.model_dir`` with ``replicas`` replicas."""
    from ray import serve

    @serve.deployment(name="textsift", num_replicas=replicas, ray_actor_options={"num_cpus": num_cpus},
                      max_ongoing_requests=max(settings.max_batch_size * 2, 64))
    class TextsiftDeployment:
        def __init__(self, raw_settings: str) -> None:
            from textsift.inference import load

            self.settings = s = ServeSettings.model_validate_json(raw_settings)
            self.api_key = read_api_key(s.api_key_file).encode() if s.api_key_file is not None else None
            self.predictor = load(s.model_dir, runtime=s.runtime, num_threads=s.num_threads)
            warm_up(self.predictor, s.max_batch_size)
            self.pass_cost = measure_cost(self.predictor)
            self.encoder = Encoder(self.predictor)
            self.forward.set_max_batch_size(s.max_batch_size)
            self.forward.set_batch_wait_timeout_s(s.max_wait_ms / 1000.0)

        @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005, batch_size_fn=_texts)
        async def forward(self, jobs: list[tuple[list[Any], bool, int]]) -> list[Any]:
            return await asyncio.to_thread(_forward_batch, self.encoder, self.predictor, self.settings, self.pass_cost, jobs)

        async def logits(self, examples: list[Any], truncate: bool) -> tuple[np.ndarray, list[bool]]:
            """A request larger than a batch goes in batch-sized parts (each part's rows stay in order); the
            texts are tokenized in the batch, with the other requests' (one tokenizer call per batch)."""
            step = self.settings.max_batch_size
            parts = [(examples[i:i + step], truncate, i) for i in range(0, len(examples), step)]
            results = await asyncio.gather(*(self.forward(part) for part in parts))
            for result in results:
                if isinstance(result, RequestError):  # a text too long with truncate: false (named by its index)
                    raise result
            return np.concatenate([r[0] for r in results]), [t for r in results for t in r[1]]

        async def __call__(self, request: Any) -> Any:
            from starlette.responses import JSONResponse

            path = request.url.path.rstrip("/") or "/"
            try:
                if path in ("/health", "/ready"):
                    return JSONResponse({"status": "ok" if path == "/health" else "ready"})
                if self.api_key is not None:
                    scheme, _, token = request.headers.get("authorization", "").encode().partition(b" ")
                    if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.api_key):
                        return JSONResponse({"detail": "missing or wrong API key: send the header 'Authorization: Bearer KEY'"},
                                            status_code=401, headers={"www-authenticate": "Bearer"})
                if path == "/model" and request.method == "GET":
                    p = self.predictor
                    return JSONResponse({"labels": p.label_names, "task": p.config.task, "multilabel": p.multilabel,
                                         "pairs": p.pairs, "runtime": p.runtime.name, "metrics": p.meta.get("metrics", {})})
                if path != "/predict":
                    return JSONResponse({"detail": "Not Found"}, status_code=404)
                if request.method != "POST":
                    return JSONResponse({"detail": "Method Not Allowed"}, status_code=405)
                raw = await request.body()
                if len(raw) > self.settings.max_body_bytes:
                    raise RequestError(413, f"the request body is larger than the server's limit of {self.settings.max_body_bytes} bytes.")
                body = parse_request(raw)
                examples = check_request(self.predictor, body, self.settings.max_request_texts)
                logits, truncated = await self.logits(examples, body.truncate)
                return JSONResponse(render(self.predictor, logits, truncated, body))
            except RequestError as exc:
                return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    return TextsiftDeployment.bind(settings.model_dump_json())


def run_ray_serve(settings: ServeSettings, *, host: str, port: int, replicas: int, address: str | None,
                  announce: Callable[[str], None]) -> None:
    """``textsift serve --ray``: start (or join) Ray, deploy, serve until SIGINT/SIGTERM, then shut Serve down."""
    import ray
    from ray import serve

    # no address: RAY_ADDRESS if set, else a Ray of its own ("local"): never a cluster that happens to run on this machine
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, logging_level=logging.WARNING)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs its own (it would end the process at once)
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(deployment(settings, replicas), name="textsift", route_prefix="/")
        announce(f"http://{host}:{port}")
        stop.wait()  # then Serve drains its replicas (their graceful shutdown) before Ray stops
    finally:
        serve.shutdown()
        ray.shutdown()


class _PredictBatch:
    """A Ray Data actor: the Predictor loaded once, mapping batches of texts to labels and probabilities."""

    def __init__(self, model_dir: str, runtime: str, num_threads: int | None) -> None:
        from textsift.inference import load

        self.predictor = load(model_dir, runtime=runtime, num_threads=num_threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        p = self.predictor
        pairs = batch["text_pair"].tolist() if p.pairs else None
        texts = batch["text"].tolist()
        from textsift.data.example import Example

        examples = [Example(text=t, text_pair=pairs[i] if pairs is not None else None, row=int(r))
                    for i, (t, r) in enumerate(zip(texts, batch["i"]))]
        return {"i": batch["i"], "probabilities": p.probabilities(p.logits(examples))}


class RayPredictor:
    """The Predictor with :meth:`predict_stream` mapped over Ray Data (``textsift predict --ray``): windows of
    ``chunk_size`` rows (memory bounded by it), each in batches of the model's ``eval_batch_size`` over
    ``concurrency`` actors, each loading the model once per window. Everything else is the Predictor's own.

    Rows travel with their index: each window's results are put back by it, whatever order Ray Data finishes
    them in, and a row missing or seen twice is an error, never a silent gap or a shifted row.
    """

    def __init__(self, predictor: Any, *, concurrency: int = 2, num_threads: int | None = 1, address: str | None = None) -> None:
        if predictor.path is None:
            raise ConfigError("predict over Ray needs a predictor loaded from a model directory (textsift.load(path)).")
        self.predictor = predictor
        self.concurrency = concurrency
        self.num_threads = num_threads
        self.address = address

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)

    def predict_stream(self, examples: Iterable[Any], chunk_size: int = 10_000, on_empty: str = "error") -> Iterator[tuple[list[Any], Any]]:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
        chunk: list[Any] = []
        for ex in examples:
            chunk.append(ex)
            if len(chunk) >= chunk_size:
                yield chunk, self._window(chunk, on_empty)
                chunk = []
        if chunk:
            yield chunk, self._window(chunk, on_empty)

    def _window(self, chunk: list[Any], on_empty: str) -> Any:
        import ray.data

        from textsift.inference.predictor import Predictions, is_empty

        p = self.predictor
        p.check(chunk, on_empty)
        skipped = np.array([on_empty == "skip" and is_empty(ex) for ex in chunk], bool)
        kept = np.flatnonzero(~skipped)
        probs = np.full((len(chunk), len(p.label_names)), np.nan, np.float32)
        if len(kept):
            batch_size = p.config.trainer.eval_batch_size
            rows = [{"i": int(i), "text": chunk[i].text, "text_pair": chunk[i].text_pair or ""} for i in kept]
            blocks = max(1, min(len(rows) // batch_size + 1, self.concurrency * 4))
            ds = ray.data.from_items(rows, override_num_blocks=blocks)
            mapped = ds.map_batches(_PredictBatch, batch_size=batch_size, concurrency=self.concurrency, batch_format="numpy",
                                    fn_constructor_kwargs={"model_dir": str(p.path), "runtime": p.runtime.name,
                                                           "num_threads": self.num_threads})
            seen = np.zeros(len(chunk), bool)
            for out in mapped.iter_batches(batch_size=None, batch_format="numpy"):
                index = out["i"].astype(np.int64)
                if seen[index].any() or skipped[index].any():
                    raise RuntimeError(f"Ray Data returned rows {index.tolist()[:5]} twice (or rows never sent)")
                seen[index] = True
                probs[index] = np.stack(out["probabilities"])
            if not seen[kept].all():
                raise RuntimeError(f"Ray Data lost {int((~seen[kept]).sum())} rows of {len(kept)}")
        labels: list[Any] = [None] * len(chunk)
        for i, label in zip(kept, p.decide(probs[kept])):
            labels[i] = label
        return Predictions(labels, probs, p.label_names, p.multilabel, skipped.tolist() if on_empty == "skip" else None)
