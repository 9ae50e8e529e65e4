"""The micro-batcher: concurrent requests queued and run through the Predictor together.

One asyncio task takes requests off a queue and gathers a batch until it holds ``max_batch_size`` texts,
``max_batch_tokens`` tokens (of requests already encoded), or the first request of the batch has waited
``max_wait_ms``; the batch then runs in a worker thread (the event loop keeps answering): requests given as
payloads are encoded there in one call (the server's way: no thread hop per request), then the rows are split by
length into forward passes within the same bounds. Each request gets back exactly its own rows, in its own
order. ``max_queue`` bounds the texts accepted and not yet answered: past it :meth:`MicroBatcher.submit` raises :class:`QueueFull` (HTTP 429), so
memory stays bounded under any load. A request whose client went away is dropped before it runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from textsift.batching import collate, eval_batches
from textsift.text.base import Ragged

logger = logging.getLogger(__name__)


#: the event loop's timers fire up to about 1 ms late (epoll rounds its timeout up to whole milliseconds): a batch
#: closes this much before its max wait is over, so that a lone request waits at most the max wait, not ~1 ms more
TIMER_SLACK = 0.001


class QueueFull(Exception):
    """The queue holds ``max_queue`` texts already: the request is refused (HTTP 429), not stored."""


class BatcherStopped(Exception):
    """The batcher is shut down (or not started): no new work is accepted."""


@dataclass
class Job:
    """One request waiting for its logits: its encoded texts (``ids``), or what the batcher's ``encode`` turns into
    them in the batch thread (``payload``, ``texts`` texts)."""

    ids: Ragged | None
    future: asyncio.Future
    payload: Any = None
    texts: int = 0
    arrived: float = field(default_factory=time.perf_counter)

    @property
    def size(self) -> int:
        return len(self.ids) if self.ids is not None else self.texts

    @property
    def tokens(self) -> int:
        """Its ids, or (not encoded yet) one per text: the token budget then holds in the forward passes only."""
        return int(self.ids.offsets[-1]) if self.ids is not None else self.texts


def concat(parts: list[Ragged]) -> Ragged:
    """Rows of every part, in order, as one Ragged."""
    if len(parts) == 1:
        return parts[0]
    lengths = np.concatenate([p.lengths for p in parts])
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Ragged(np.concatenate([p.values for p in parts]), offsets)


@dataclass
class BatchStats:
    """What the batcher reports after each forward pass and each change of its queue (for metrics)."""

    on_batch: Callable[[int, int], None] = lambda texts, tokens: None  # one forward pass: texts, tokens
    on_depth: Callable[[int], None] = lambda depth: None  # texts accepted and not yet answered
    on_dropped: Callable[[int], None] = lambda texts: None  # texts of requests whose client went away
    on_wait: Callable[[float], None] = lambda seconds: None  # one request: from its arrival to the start of its batch
    on_forward: Callable[[float], None] = lambda seconds: None  # one forward pass: its seconds in the batch thread


class MicroBatcher:
    """Gather concurrent requests into batches for ``logits_fn`` (a collated batch -> logits), run in a thread.

    ``input_format``: how batches are collated ("bag" or "padded"). ``pass_cost``: the fixed cost of a forward pass
    in padded tokens; given, a gathered batch of padded rows is cut by length where that saves work (a short text is
    not padded to a long one's length when a second pass costs less). Start with :meth:`start` inside the event
    loop, stop with :meth:`stop` (the queued work is finished first).
    """

    def __init__(
        self, logits_fn: Callable[[dict[str, np.ndarray]], np.ndarray], input_format: str, *, max_batch_size: int = 64,
        max_batch_tokens: int = 16384, max_wait_ms: float = 5.0, max_queue: int = 4096, stats: BatchStats | None = None,
        pass_cost: float | None = None, encode: Callable[[list[Any]], list[tuple[Ragged, Any] | Exception]] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_batch_tokens < 1 or max_wait_ms < 0 or max_queue < 1:
            raise ValueError("max_batch_size, max_batch_tokens and max_queue must be >= 1, max_wait_ms >= 0")
        self.logits_fn = logits_fn
        self.input_format = input_format
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.stats = stats or BatchStats()
        self.pass_cost = pass_cost  # a forward pass's fixed cost in padded tokens (see measure_pass_cost); None: no cost split
        self.encode = encode  # payloads -> (ids, extra) or the exception for that request, in one call in the batch thread
        self.depth = 0  # texts accepted and not yet answered
        self._queue: asyncio.Queue[Job | None] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._accepting = False

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="textsift-batch")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="textsift-batcher")
        self._accepting = True

    async def stop(self) -> None:
        """Refuse new work, finish what was accepted, then end the batch task and its thread."""
        self._accepting = False
        if self._queue is not None and self._task is not None:
            self._queue.put_nowait(None)  # after every accepted job
            try:
                await self._task
            finally:
                self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def running(self) -> bool:
        return self._accepting and self._task is not None and not self._task.done()

    # -- requests ---------------------------------------------------------------------------------
    def submit(self, ids: Ragged | None, payload: Any = None, texts: int = 0) -> asyncio.Future:
        """Queue one request's encoded texts; the future gives their logits ``[len(ids), labels]``, in order. Without
        ``ids``: its ``payload`` of ``texts`` texts, encoded in the batch thread; the future gives ``(logits, extra)``."""
        if not self.running:
            raise BatcherStopped("the server is shutting down")
        if ids is None and self.encode is None:
            raise ValueError("this batcher has no encode function: submit encoded ids")
        n = len(ids) if ids is not None else texts
        if self.depth + n > self.max_queue:
            raise QueueFull(f"the queue holds {self.depth} texts; {n} more would pass its bound of {self.max_queue}")
        future = asyncio.get_running_loop().create_future()
        job = Job(ids, future, payload, n)
        self._set_depth(self.depth + n)
        future.add_done_callback(lambda _: self._set_depth(self.depth - n))
        assert self._queue is not None
        self._queue.put_nowait(job)
        return future

    async def logits(self, ids: Ragged) -> np.ndarray:
        """Submit and wait; if the caller is cancelled (its client went away), the job is dropped before it runs."""
        return await self._wait(self.submit(ids))

    async def encoded_logits(self, payload: Any, texts: int) -> tuple[np.ndarray, Any]:
        """Like :meth:`logits` for a request the batch thread encodes (with every other request of its batch, in one
        call): ``(logits, extra)`` as ``encode`` gave them; an exception ``encode`` gave for this request is raised."""
        return await self._wait(self.submit(None, payload, texts))

    @staticmethod
    async def _wait(future: asyncio.Future) -> Any:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.cancel()  # the batch loop skips it; if it is running, its result is discarded
            raise

    def _set_depth(self, depth: int) -> None:
        self.depth = depth
        self.stats.on_depth(depth)

    # -- the batch task ---------------------------------------------------------------------------
    def _fits(self, jobs: list[Job], job: Job) -> bool:
        texts = sum(j.size for j in jobs) + job.size
        tokens = sum(j.tokens for j in jobs) + job.tokens
        return texts <= self.max_batch_size and tokens <= self.max_batch_tokens

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        carry: Job | None = None
        stopping = False
        while True:
            first = carry if carry is not None else await self._queue.get()
            carry = None
            if first is None:
                return
            jobs = [first]  # a request larger than the bounds runs alone (split into passes within them)
            deadline = first.arrived + max(0.0, self.max_wait - TIMER_SLACK)
            while sum(j.size for j in jobs) < self.max_batch_size:
                try:
                    timeout = deadline - time.perf_counter()
                    nxt = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if nxt is None:
                    stopping = True
                    break
                if not self._fits(jobs, nxt):
                    carry = nxt
                    break
                jobs.append(nxt)
            live = [j for j in jobs if not j.future.done()]  # cancelled: the client went away
            dropped = sum(j.size for j in jobs if j.future.cancelled())
            if dropped:
                self.stats.on_dropped(dropped)
            if live:
                started = time.perf_counter()
                for job in live:
                    self.stats.on_wait(started - job.arrived)
                try:
                    results = await loop.run_in_executor(self._executor, self._run, live)
                except Exception as exc:  # noqa: BLE001 - handed to each waiting request, never kills the loop
                    logger.exception("a batch of %d requests failed", len(live))
                    for job in live:
                        if not job.future.done():
                            job.future.set_exception(exc)
                else:
                    for job, result in zip(live, results):
                        if not job.future.done():
                            if isinstance(result, Exception):  # this request's own error (from encode): only it fails
                                job.future.set_exception(result)
                            else:
                                job.future.set_result(result)
            if stopping:  # every job before the stop mark has run
                return

    def _run(self, jobs: list[Job]) -> list[Any]:
        """In the batch thread: encode the jobs that need it (in one call), then the forward passes over all of them.
        Each job's result, in order: its logits, ``(logits, extra)`` for an encoded payload, or its own exception."""
        def forward(parts: list[Ragged]) -> list[np.ndarray]:
            return run_batches(self.logits_fn, self.input_format, parts, self.max_batch_size, self.max_batch_tokens,
                               self.stats.on_batch, self.pass_cost, self.stats.on_forward)

        return run_jobs([j.ids for j in jobs], [j.payload for j in jobs], self.encode, forward)


def run_jobs(ids: list[Ragged | None], payloads: list[Any],
             encode: Callable[[list[Any]], list[tuple[Ragged, Any] | Exception]] | None,
             forward: Callable[[list[Ragged]], list[np.ndarray]]) -> list[Any]:
    """One batch of jobs: those without ``ids`` have their ``payloads`` encoded in one ``encode`` call, then every
    job's rows go through ``forward`` together (:func:`run_batches` over them). Each job's result, in order: its
    logits, ``(logits, extra)`` for an encoded payload, or the exception ``encode`` gave for it (only that job fails)."""
    results: list[Any] = [None] * len(ids)
    extras: dict[int, Any] = {}
    known: dict[int, Ragged] = {i: x for i, x in enumerate(ids) if x is not None}
    pending = [i for i, x in enumerate(ids) if x is None]
    if pending:
        assert encode is not None
        for i, outcome in zip(pending, encode([payloads[i] for i in pending]), strict=True):
            if isinstance(outcome, Exception):
                results[i] = outcome
            else:
                known[i], extras[i] = outcome
    order = sorted(known)
    if order:
        for i, out in zip(order, forward([known[i] for i in order])):
            results[i] = (out, extras[i]) if i in extras else out
    return results


def split_by_cost(lengths: np.ndarray, max_batch_size: int, max_batch_tokens: int, pass_cost: float) -> list[np.ndarray]:
    """Forward passes (index arrays) over rows of these ``lengths`` that cost the least padded work.

    Padded batches cost about ``pass_cost + width * rows`` (in token units: a fixed cost per pass, then the padded
    tokens), so one pass over a short and a long text pads the short one to the long one's length. Rows sorted by
    length are cut into contiguous groups by dynamic programming, each within ``max_batch_size`` rows and
    ``max_batch_tokens`` padded tokens (a row longer than that budget alone gets its own pass).
    """
    order = np.argsort(lengths, kind="stable")
    widths = np.maximum(lengths[order].astype(np.float64), 1.0)
    n = len(order)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, np.int64)
    for i in range(1, n + 1):  # best[i]: the cheapest passes over the i shortest rows; the last one ends at row i - 1
        starts = np.arange(max(0, i - max_batch_size), i)
        rows = i - starts
        cost = best[starts] + pass_cost + widths[i - 1] * rows
        cost[(widths[i - 1] * rows > max_batch_tokens) & (rows > 1)] = np.inf
        k = int(np.argmin(cost))
        best[i], cut[i] = cost[k], starts[k]
    passes, i = [], n
    while i > 0:
        passes.append(order[cut[i]:i])
        i = int(cut[i])
    return passes[::-1]


def measure_pass_cost(logits_fn: Callable[[dict[str, np.ndarray]], np.ndarray], input_format: str, token: int,
                      width: int = 64, rows: int = 32, repeats: int = 3) -> float | None:
    """The fixed cost of one forward pass in units of padded positions, or None where padding costs (next to)
    nothing, so that there is nothing to trade for a second pass. Times (medians of ``repeats``) one row of 8 ids,
    ``rows`` rows of 8, and the same rows with one of them ``width`` ids long, and fits
    ``time = fixed + per_token * tokens + per_padded * rows * width``: a runtime that pads costs ``per_padded`` for
    every position of the padded batch, one that runs on real tokens only (the torch runtime's BERT encoders) almost
    nothing past its tokens. 0 for "bag" batches (no padding)."""
    if input_format != "padded":
        return 0.0

    def timed(lengths: list[int]) -> float:
        ids = Ragged.from_rows([[token] * n for n in lengths])
        batch = collate(ids, np.arange(len(lengths)), input_format)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            logits_fn(batch)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    short, long_ = 8, max(width, 9)
    one = timed([short])
    even = timed([short] * rows)
    mixed = timed([long_] + [short] * (rows - 1))
    # even - one = (rows - 1) * short * (per_token + per_padded)
    # mixed - even = (long_ - short) * per_token + rows * (long_ - short) * per_padded
    both = (even - one) / ((rows - 1) * short)
    per_padded = ((mixed - even) / (long_ - short) - both) / (rows - 1)
    if both <= 0 or per_padded <= 0.1 * both:  # padding costs under a tenth of a real token: never worth a pass
        return None
    per_padded = min(per_padded, both)
    return max(0.0, (one - short * both) / per_padded)


def run_batches(
    logits_fn: Callable[[dict[str, np.ndarray]], np.ndarray], input_format: str, parts: list[Ragged], max_batch_size: int,
    max_batch_tokens: int, on_batch: Callable[[int, int], None] = lambda texts, tokens: None, pass_cost: float | None = None,
    on_forward: Callable[[float], None] = lambda seconds: None,
) -> list[np.ndarray]:
    """Forward passes over every part's rows together; each part's logits, in its order. Padded batches are cut where
    that saves work (see :func:`split_by_cost`; ``pass_cost`` None: by length within the bounds only)."""
    ids = concat(parts)
    if pass_cost is not None and input_format == "padded":
        passes = split_by_cost(ids.lengths, max_batch_size, max_batch_tokens, pass_cost)
    else:
        passes = eval_batches(ids.lengths, max_batch_size, max_tokens=max_batch_tokens)
    out: np.ndarray | None = None
    for index in passes:
        batch = collate(ids, index, input_format)
        start = time.perf_counter()
        logits = logits_fn(batch)
        on_forward(time.perf_counter() - start)
        if out is None:
            out = np.zeros((len(ids), logits.shape[1]), np.float32)
        out[index] = logits
        on_batch(len(index), int(ids.lengths[index].sum()))
    assert out is not None
    bounds = np.cumsum([0] + [len(p) for p in parts])
    return [out[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
