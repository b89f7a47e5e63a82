"""Prometheus metrics of one server (its own registry, so that several apps can live in
one process): requests by endpoint and status, latency, adaptation steps, queue length,
cancellations."""

from __future__ import annotations

import time
from collections.abc import Callable

# Latency buckets in seconds: a base completion of a small model takes milliseconds,
# a fine-tuned one seconds to minutes.
BUCKETS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics")


class Metrics:
    """The server's counters; ``asgi(app)`` wraps an ASGI app to count its requests.

    ``queue_length`` is read from ``pending()`` at every scrape.
    """

    def __init__(self, pending: Callable[[], int]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "siftlm_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "siftlm_request_seconds", "time from request to the end of the response",
            ["endpoint"], buckets=BUCKETS, registry=registry,
        )  # fmt: skip
        self.adaptations = Counter(
            "siftlm_adaptations", "completed adaptations by method", ["method"], registry=registry
        )
        self.steps = Counter(
            "siftlm_adaptation_steps", "gradient steps of test-time fine-tuning", registry=registry
        )
        self.cancelled = Counter(
            "siftlm_cancelled", "requests stopped before their end, by reason", ["reason"],
            registry=registry,
        )  # fmt: skip
        queue = Gauge("siftlm_queue_length", "requests waiting or running", registry=registry)
        queue.set_function(lambda: float(pending()))

    def adapted(self, method: str, steps: int) -> None:
        self.adaptations.labels(method).inc()
        self.steps.inc(steps)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def asgi(self, app):
        """``app`` counting every HTTP request (status and time to its last byte)."""

        async def counted(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
            status = [500]
            start = time.perf_counter()

            async def send_counted(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_counted)
            finally:
                self.requests.labels(endpoint, str(status[0])).inc()
                self.latency.labels(endpoint).observe(time.perf_counter() - start)

        return counted
