"""Prometheus metrics of the server, correct across ``--workers`` processes.

With several workers, ``textsift serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh temporary directory
before any worker starts: prometheus-client's multiprocess mode then keeps each worker's values in files
there, and ``/metrics`` (answered by any one worker) adds them up. One process: an ordinary registry.
"""

from __future__ import annotations

import os
from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ServerMetrics:
    """Requests by route and status, request latency, texts per forward pass, queue depth, dropped texts."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        r = self.registry
        self.requests = Counter("textsift_requests", "HTTP requests by route, method and status code.",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("textsift_request_duration_seconds", "Time from request to response, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("textsift_batch_size", "Texts per forward pass of the model.", buckets=BATCH_BUCKETS, registry=r)
        self.batch_tokens = Histogram("textsift_batch_tokens", "Tokens (ids) per forward pass of the model.",
                                      buckets=tuple(b * 64 for b in BATCH_BUCKETS), registry=r)
        self.queue_wait = Histogram("textsift_queue_wait_seconds", "Time a request waited for its batch to start (max wait included).",
                                    buckets=(0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
                                    registry=r)
        self.forward = Histogram("textsift_forward_seconds", "Time of one forward pass of the model (in the batch thread).",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.texts = Counter("textsift_predicted_texts", "Texts predicted.", registry=r)
        self.dropped = Counter("textsift_dropped_texts", "Texts of requests whose client went away before they ran.", registry=r)
        gauge: dict[str, Any] = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        self.queue_depth = Gauge("textsift_queue_depth", "Texts accepted and not yet answered (all workers).", registry=r, **gauge)
        self.ready = Gauge("textsift_ready", "Workers with the model loaded and warmed up.", registry=r, **gauge)

    def on_batch(self, texts: int, tokens: int) -> None:
        self.batch_size.observe(texts)
        self.batch_tokens.observe(tokens)
        self.texts.inc(texts)

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every metric (all workers' in multiprocess mode) and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """A worker that exits takes its live gauges (queue depth, ready) out of the sums."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())
