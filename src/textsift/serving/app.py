"""The HTTP prediction server: a FastAPI app around one Predictor and its micro-batcher.

Routes: ``POST /predict``, ``GET /health`` (liveness), ``GET /ready`` (503 until the model is loaded and warmed
up), ``GET /metrics`` (Prometheus), ``GET /model``, ``GET /`` (a page to try the model), ``/docs`` (OpenAPI).
Bad input never gives a 500: too many texts or too large a body is 413, a malformed or mistyped body 422
(naming the field), a full queue 429. With an API key every route but ``/health``, ``/ready`` and the page
(which holds no data and asks for the key) needs ``Authorization: Bearer KEY``.

``textsift serve`` runs :func:`app_from_environment` in each uvicorn worker; :func:`create_app` builds one
directly (tests, embedding in another ASGI server).
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from textsift.errors import ConfigError
from textsift.serving.batcher import BatcherStopped, BatchStats, MicroBatcher, QueueFull
from textsift.serving.schema import PredictRequest, PredictResponse

logger = logging.getLogger(__name__)

#: the environment variable through which ``textsift serve`` hands its settings to each uvicorn worker
SETTINGS_ENV = "TEXTSIFT_SERVE_SETTINGS"
#: routes open without the API key: probes, and the page (static; it asks for the key and sends it)
OPEN_ROUTES = frozenset({"/health", "/ready", "/"})

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServeSettings(BaseModel):
    """Everything ``textsift serve`` configures, validated once (the names are the CLI's options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: Path
    runtime: str = "auto"
    max_batch_size: int = Field(64, ge=1, description="Texts per forward pass.")
    max_batch_tokens: int = Field(16384, ge=1, description="Tokens (ids, padding included) per forward pass.")
    max_wait_ms: float = Field(5.0, ge=0, description="How long a batch waits for more requests after its first arrived.")
    max_queue: int = Field(2048, ge=1, description="Texts accepted and not yet answered; past it 429.")
    max_request_texts: int = Field(256, ge=1, description="Texts in one request; past it 413.")
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1, description="Bytes of a request body; past it 413.")
    api_key_file: Path | None = None
    cors_origins: tuple[str, ...] = ()
    num_threads: int | None = Field(None, ge=1, description="CPU threads of the runtime (default: its own).")
    gil_switch_ms: float | None = Field(
        None, gt=0, description="Python's thread switch interval in each server process (sys.setswitchinterval; None, the "
        "default: Python's 5 ms). The event loop and the batch thread share the GIL; 0.5 ms measured no faster than 5 "
        "under 32 clients (BENCHMARKS.md, serving under load).")


def read_api_key(path: Path) -> str:
    """The API key in ``path`` (its first line, stripped): one clear error if missing or empty."""
    try:
        key = path.read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--api-key-file '{path}': cannot read it ({exc.__class__.__name__}: {exc}). Give a readable UTF-8 file holding the key.") from None
    if not key or not key[0].strip():
        raise ConfigError(f"--api-key-file '{path}' is empty; write the key on its first line (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))').")
    if len(key[0].strip()) < 16:
        raise ConfigError(f"--api-key-file '{path}': the key has {len(key[0].strip())} characters, expected at least 16; use a long random key.")
    return key[0].strip()


class RequestError(Exception):
    """A request the server refuses, with its status code and, for 422, the body field it names."""

    def __init__(self, status: int, message: str, loc: tuple[Any, ...] | None = None, headers: dict[str, str] | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.loc = loc
        self.headers = headers or {}
        self.errors = errors

    def body(self) -> dict[str, Any]:
        if self.errors is not None:
            return {"detail": self.errors}
        if self.status == 422:
            return {"detail": [{"type": "value_error", "loc": ["body", *(self.loc or ())], "msg": str(self)}]}
        return {"detail": str(self)}


# -- text -> ids, with the truncation check -----------------------------------------------------------
def uncapped_tokenizer(tokenizer: Any) -> Any | None:
    """A copy of ``tokenizer`` that cuts nothing (to measure a text's full length), or None if it never cuts."""
    spec = getattr(tokenizer, "spec", None)
    if getattr(spec, "max_length", None) is None:
        return None
    clone = copy.copy(tokenizer)
    clone.spec = spec.model_copy(update={"max_length": 1 << 30})  # type: ignore[union-attr]
    backend = getattr(tokenizer, "tokenizer_", None)
    if backend is not None and hasattr(backend, "no_truncation"):  # a Hugging Face tokenizer truncates by itself
        from tokenizers import Tokenizer as Backend

        backend = Backend.from_str(backend.to_str())
        backend.no_truncation()
        clone.tokenizer_ = backend
    return clone


class Encoder:
    """The Predictor's text-to-ids step, and which texts it cut at the model's maximum length."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.max_length: int | None = getattr(getattr(predictor.tokenizer, "spec", None), "max_length", None)
        self._uncapped = uncapped_tokenizer(predictor.tokenizer)

    def __call__(self, examples: list[Any], truncate: bool) -> tuple[Any, list[bool]]:
        return self._checked(examples, self.predictor.encode(examples).ids, truncate)

    def many(self, requests: list[tuple[Any, ...]]) -> list[tuple[Any, list[bool]] | RequestError]:
        """Several requests' ``(examples, truncate)`` encoded in one tokenizer call (a fast tokenizer batches in Rust):
        each request's ``(ids, truncated)``, or the :class:`RequestError` of a request whose text is too long. A third
        item, the index of a part's first text in its whole request, is how a too-long text is named."""
        everything = [ex for examples, *_ in requests for ex in examples]
        ids = self.predictor.encode(everything).ids
        bounds = np.cumsum([0] + [len(request[0]) for request in requests])
        out: list[tuple[Any, list[bool]] | RequestError] = []
        for (examples, truncate, *first), a, b in zip(requests, bounds[:-1], bounds[1:]):
            try:
                out.append(self._checked(examples, ids.take(np.arange(a, b)), truncate, first[0] if first else 0))
            except RequestError as exc:
                out.append(exc)
        return out

    def _checked(self, examples: list[Any], ids: Any, truncate: bool, first: int = 0) -> tuple[Any, list[bool]]:
        truncated = [False] * len(examples)
        if self.max_length is not None and self._uncapped is not None:
            at_max = np.flatnonzero(ids.lengths >= self.max_length)  # only these can have been cut
            if len(at_max):
                full = self._uncapped.encode([examples[i] for i in at_max]).lengths
                for i, n in zip(at_max, full):
                    if n > self.max_length:
                        if not truncate:
                            where = first + int(i)
                            raise RequestError(422, f"texts[{where}] is {int(n)} tokens long, longer than the model's maximum "
                                               f"of {self.max_length}; shorten it, or send truncate: true to cut it.", ("texts", where))
                        truncated[int(i)] = True
        return ids, truncated


# -- the state of one worker ----------------------------------------------------------------------------
class ServerState:
    """The loaded predictor, its batcher and metrics; ``ready`` once loaded and warmed up."""

    def __init__(self, settings: ServeSettings, api_key: str | None) -> None:
        from textsift.serving.metrics import ServerMetrics

        self.settings = settings
        self.api_key = api_key
        self.metrics = ServerMetrics()
        self.predictor: Any = None
        self.encoder: Encoder | None = None
        self.batcher: MicroBatcher | None = None
        self.ready = False
        self.load_error: str | None = None

    def use(self, predictor: Any, pass_cost: float | None = None) -> None:
        """Start the batcher for the warmed-up predictor (inside the event loop); ``pass_cost``: see :func:`measure_cost`."""
        s = self.settings
        stats = BatchStats(on_batch=self.metrics.on_batch, on_depth=self.metrics.queue_depth.set,
                           on_dropped=self.metrics.dropped.inc, on_wait=self.metrics.queue_wait.observe,
                           on_forward=self.metrics.forward.observe)
        self.predictor = predictor
        self.encoder = Encoder(predictor)
        self.batcher = MicroBatcher(predictor.runtime.logits, predictor.input_format, max_batch_size=s.max_batch_size,
                                    max_batch_tokens=s.max_batch_tokens, max_wait_ms=s.max_wait_ms, max_queue=s.max_queue,
                                    stats=stats, pass_cost=pass_cost, encode=self.encoder.many)
        self.batcher.start()
        self.ready = True
        self.metrics.ready.set(1)

    def describe(self) -> dict[str, Any]:
        p = self.predictor
        card = p.path / "README.md" if p.path is not None else None
        tokenizer = getattr(p.tokenizer, "spec", None)
        s = self.settings
        return {
            "labels": p.label_names, "task": p.config.task, "multilabel": p.multilabel, "pairs": p.pairs,
            "model_type": p.config.model.type, "runtime": p.runtime.name,
            "tokenizer": {"type": getattr(tokenizer, "type", None), "max_length": getattr(tokenizer, "max_length", None)},
            "calibrated": p.calibration is not None, "thresholds": p.decision is not None,
            "metrics": p.meta.get("metrics", {}), "created": p.meta.get("created"),
            "pass_cost_tokens": None if self.batcher is None or self.batcher.pass_cost is None else round(self.batcher.pass_cost, 1),
            "limits": {"max_request_texts": s.max_request_texts, "max_body_bytes": s.max_body_bytes,
                       "max_batch_size": s.max_batch_size, "max_batch_tokens": s.max_batch_tokens,
                       "max_wait_ms": s.max_wait_ms, "max_queue": s.max_queue},
            "card": card.read_text(encoding="utf-8") if card is not None and card.is_file() else None,
        }


def warm_up(predictor: Any, batch_size: int) -> None:
    """Run the network once on one text and once on a full batch (first calls allocate and compile)."""
    for n in (1, min(batch_size, 64)):
        predictor.predict(["warm up"] * n, pairs=["warm up"] * n if predictor.pairs else None)


def measure_cost(predictor: Any) -> float | None:
    """A forward pass's fixed cost in padded tokens, measured on the model being served (0 for bag batches; None
    where the runtime does not pay for padding: batches are then only sorted and cut by the bounds)."""
    from textsift.data.example import Example
    from textsift.serving.batcher import measure_pass_cost

    if predictor.input_format != "padded":
        return 0.0  # no padding: nothing to trade
    ids = predictor.encode([Example(text="warm up", text_pair="warm up" if predictor.pairs else None)]).ids.values
    cost = measure_pass_cost(predictor.runtime.logits, predictor.input_format, int(ids[-1]) if len(ids) else 1)
    if cost is None:
        logger.info("padding costs this runtime next to nothing: each gathered batch runs in as few passes as the bounds allow")
    else:
        logger.info("one forward pass costs as much as %.0f padded tokens: batches are cut by length where that saves work", cost)
    return cost


# -- ASGI middleware (plain ASGI: the body stays a stream, nothing is wrapped twice) -------------------------
async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def route_of(path: str, routes: frozenset[str]) -> str:
    return path if path in routes else "other"  # unknown paths share one label: bounded cardinality


class MetricsMiddleware:
    """Count every response by route, method and status (401s and 413s included) and time it."""

    def __init__(self, app: ASGIApp, state: ServerState, routes: frozenset[str]) -> None:
        self.app, self.state, self.routes = app, state, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = route_of(scope["path"], self.routes)
            m = self.state.metrics
            m.requests.labels(route, scope["method"], str(status[0])).inc()
            m.latency.labels(route).observe(time.perf_counter() - start)


class AuthMiddleware:
    """Every route but the open ones needs ``Authorization: Bearer KEY`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_ROUTES or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return await self.app(scope, receive, send)
        await send_json(send, 401, {"detail": "missing or wrong API key: send the header 'Authorization: Bearer KEY'"},
                        {"www-authenticate": "Bearer"})


class BodyLimitMiddleware:
    """Refuse a body over ``limit`` bytes with 413, before the app reads it (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        too_large = {"detail": f"the request body is larger than the server's limit of {self.limit} bytes; "
                               "send fewer or shorter texts per request (or raise --max-body-bytes)."}
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await send_json(send, 413, too_large, {"connection": "close"})
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await send_json(send, 413, too_large, {"connection": "close"})
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then: the disconnect, when it comes

        await self.app(scope, replay, send)


# -- the app ----------------------------------------------------------------------------------------------
def create_app(settings: ServeSettings, predictor: Any = None, api_key: str | None = None) -> Any:
    """The ASGI app serving ``settings.model_dir`` (loaded in the background after start-up, unless ``predictor``
    is given). ``api_key``: the key itself (default: read from ``settings.api_key_file``, if set)."""
    from textsift.serving.page import page as render_page

    if api_key is None and settings.api_key_file is not None:
        api_key = read_api_key(settings.api_key_file)
    state = ServerState(settings, api_key)
    page_html = render_page(api_key is not None)

    async def load() -> None:
        try:
            loaded = predictor
            if loaded is None:
                from textsift.inference import load as load_predictor

                loaded = await asyncio.to_thread(load_predictor, settings.model_dir, runtime=settings.runtime,
                                                 num_threads=settings.num_threads)
            await asyncio.to_thread(warm_up, loaded, settings.max_batch_size)
            cost = await asyncio.to_thread(measure_cost, loaded)
            state.use(loaded, cost)
            logger.info("model %s ready (runtime %s, %d labels)", settings.model_dir, loaded.runtime.name, len(loaded.label_names))
        except Exception as exc:  # noqa: BLE001 - /ready reports it; /health stays up so the cause can be read
            state.load_error = f"{type(exc).__name__}: {exc}"
            logger.error("cannot load the model %s: %s", settings.model_dir, state.load_error)

    @asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202
        loading = asyncio.get_running_loop().create_task(load())
        try:
            yield
        finally:  # uvicorn calls this after every request in flight has been answered
            if not loading.done():
                loading.cancel()
            if state.batcher is not None:
                await state.batcher.stop()
            state.metrics.ready.set(0)
            state.metrics.close()

    app = FastAPI(title="textsift prediction server", version="1", lifespan=lifespan,
                  description="Labels and probabilities for texts from a textsift model directory.")
    app.state.textsift = state

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]  # no echo of the input
        return JSONResponse({"detail": errors}, status_code=422)

    def predictor_or_503() -> Any:
        if not state.ready:
            reason = f"the model failed to load: {state.load_error}" if state.load_error else "the model is still loading"
            raise RequestError(503, reason, headers={"retry-after": "1"})
        return state.predictor

    request_schema = PredictRequest.model_json_schema()

    @app.post("/predict", response_model=None, openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": request_schema}}}},
        responses={200: {"model": PredictResponse}, 413: {"description": "Too many texts, or too large a body."},
                   422: {"description": "A malformed body: each error names its field in 'loc'."},
                   429: {"description": "The queue is full: retry later."}})
    async def predict(request: Request) -> Response:
        """Labels and probabilities for each text, in the order given (the body is JSON whatever its content type)."""
        p = predictor_or_503()
        body = parse_request(await request.body())
        examples = check_request(p, body, settings.max_request_texts)
        assert state.encoder is not None and state.batcher is not None
        try:  # encoded in the batch thread, with the other requests of its batch, in one tokenizer call
            answer = await until_disconnected(request, state.batcher.encoded_logits((examples, body.truncate), len(examples)))
        except QueueFull as exc:
            raise RequestError(429, f"the server is busy ({exc}); retry later.", headers={"retry-after": "1"}) from None
        except BatcherStopped:
            raise RequestError(503, "the server is shutting down; retry on another instance.", headers={"retry-after": "1"}) from None
        if answer is None:  # the client went away: nobody reads an answer
            return Response(status_code=499)
        logits, truncated = answer
        return JSONResponse(render(p, logits, truncated, body))

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: 200 while the process serves."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"description": "Not ready: the model is loading (or failed to load)."}})
    async def ready() -> JSONResponse:
        """Readiness: 200 once the model is loaded and warmed up, 503 before (and after a failed load)."""
        if state.ready and state.batcher is not None and state.batcher.running:
            return JSONResponse({"status": "ready"})
        status = "failed" if state.load_error else ("stopping" if state.ready else "loading")
        return JSONResponse({"status": status, "detail": state.load_error}, status_code=503, headers={"retry-after": "1"})

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format (every worker's values)."""
        data, content_type = state.metrics.exposition()
        return Response(data, media_type=content_type)

    @app.get("/model")
    async def model() -> JSONResponse:
        """Labels, task, settings, evaluation metrics and model card of the served model."""
        predictor_or_503()
        return JSONResponse(state.describe())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html)

    routes = frozenset(r.path for r in app.routes if hasattr(r, "path"))
    http: ASGIApp = BodyLimitMiddleware(app, settings.max_body_bytes)
    if api_key is not None:
        http = AuthMiddleware(http, api_key)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        http = CORSMiddleware(http, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                              allow_headers=["authorization", "content-type"])
    return _LifespanApp(MetricsMiddleware(http, state, routes), app)


class _LifespanApp:
    """The middleware stack for HTTP, the FastAPI app itself for lifespan events."""

    def __init__(self, http: Any, app: Any) -> None:
        self.http, self.app = http, app
        self.state: ServerState = app.state.textsift

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        return await self.http(scope, receive, send)


def parse_request(raw: bytes) -> PredictRequest:
    """The request body, or a 422 naming each wrong field (``loc`` as FastAPI gives it; the input is not echoed)."""
    from pydantic import ValidationError

    try:
        return PredictRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        raise RequestError(422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors), errors=errors) from None


def check_request(predictor: Any, body: PredictRequest, max_texts: int) -> list[Any]:
    """The request's examples, or a :class:`RequestError` naming what is wrong (413 too many, 422 a field)."""
    from textsift.data.example import Example
    from textsift.inference.predictor import is_empty

    n = len(body.texts)
    if n > max_texts:
        raise RequestError(413, f"{n} texts in one request; the server takes at most {max_texts}. Split them over several requests.")
    if predictor.pairs and body.pairs is None:
        raise RequestError(422, "this model classifies text pairs: give 'pairs', the second text of each text.", ("pairs",))
    if not predictor.pairs and body.pairs is not None:
        raise RequestError(422, "this model classifies single texts: leave 'pairs' out.", ("pairs",))
    if body.pairs is not None and len(body.pairs) != n:
        raise RequestError(422, f"{len(body.pairs)} pairs for {n} texts: give one second text per text.", ("pairs",))
    examples = [Example(text=t, text_pair=body.pairs[i] if body.pairs is not None else None, row=i + 1)
                for i, t in enumerate(body.texts)]
    for i, ex in enumerate(examples):
        if is_empty(ex):
            field = "texts" if not ex.text.strip() else "pairs"
            raise RequestError(422, f"{field}[{i}] is empty; send text to classify.", (field, i))
    return examples


def render(predictor: Any, logits: np.ndarray, truncated: list[bool], body: PredictRequest) -> dict[str, Any]:
    """The response body: one prediction per text, in order."""
    probs = predictor.probabilities(logits)
    labels = predictor.decide(probs)
    names = predictor.label_names
    key = "labels" if predictor.multilabel else "label"
    tops = predictor_tops(probs, names, body.top_k) if body.top_k is not None else None
    out = []
    for i, label in enumerate(labels):
        row: dict[str, Any] = {key: label}
        if tops is not None:
            row["top_k"] = tops[i]
        else:
            row["probabilities"] = dict(zip(names, probs[i].tolist()))
        if body.raw_scores:
            row["raw_scores"] = dict(zip(names, logits[i].tolist()))
        row["truncated"] = truncated[i]
        out.append(row)
    return {"predictions": out, "label_names": names, "multilabel": predictor.multilabel}


def predictor_tops(probs: np.ndarray, names: list[str], k: int) -> list[list[dict[str, Any]]]:
    k = min(k, len(names))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[{"label": names[j], "probability": float(row[j])} for j in idx] for row, idx in zip(probs, order)]


async def until_disconnected(request: Any, work: Awaitable[np.ndarray]) -> np.ndarray | None:
    """Await ``work``, or cancel it and return None as soon as the client disconnects."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    if task in done:
        watcher.cancel()
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return None


def app_from_environment() -> Any:
    """The app of one uvicorn worker, from the settings ``textsift serve`` put in :data:`SETTINGS_ENV`."""
    raw = os.environ.get(SETTINGS_ENV)
    if raw is None:
        raise ConfigError(f"{SETTINGS_ENV} is not set: start the server with 'textsift serve MODEL_DIR'.")
    settings = ServeSettings.model_validate_json(raw)
    if settings.gil_switch_ms is not None:  # this process is the server's own: the interpreter setting is ours to set
        sys.setswitchinterval(settings.gil_switch_ms / 1000.0)
    return create_app(settings)


def preflight(model_dir: Path, runtime: str) -> Path:
    """Check the model directory and the runtime's files and package before any server starts: one clear error
    now instead of a worker that never gets ready. Returns the model directory (a run directory's ``model/``)."""
    from textsift.inference.runtime import choose_runtime, load_runtime
    from textsift.inference.settings import load_inference_config
    from textsift.modeldir import check_model_dir, load_labels, load_tokenizer

    directory = check_model_dir(model_dir)
    config = load_inference_config(directory)
    labels = load_labels(directory)
    entry = choose_runtime(directory, runtime)
    if entry.missing_package() is not None or entry.missing_files(directory):
        load_runtime(directory, runtime, labels=labels, tokenizer=load_tokenizer(directory, config))  # raises the error naming the fix
    return directory
