"""Who may call a served model, how many at once, and what it has answered.

- A bearer token (``--api-key`` or ``TLCV_API_KEY``) on every route but ``/healthz`` (a load
  balancer's probe carries no secret); compared in constant time; 401 with a JSON detail.
- A server reachable from other machines needs a key: binding beyond loopback without one is
  refused unless ``--insecure`` says the network is trusted.
- Admission: at most ``max_pending`` inference requests wait or run at once (429 beyond it,
  with Retry-After), and each gets ``request_timeout`` seconds, queue included (503 after it):
  an overloaded server answers at once instead of hanging its clients.
- ``GET /metrics`` in Prometheus' text format (prometheus_client): requests by route and
  status code, a latency histogram per route, errors by code, inference requests in flight.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool

from ..errors import TlcvError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
OPEN_ROUTES = {"/healthz"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def check_binding(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse to listen beyond loopback with no key, unless ``insecure`` says so."""
    if host in LOOPBACK or api_key or insecure:
        return
    raise TlcvError(
        f"--host {host} makes the model reachable from other machines, and no API key is set",
        hint="set one (--api-key KEY or TLCV_API_KEY=KEY; clients send "
        "'Authorization: Bearer KEY'), or pass --insecure on a network you trust",
    )


class Metrics:
    """The server's counters, in a registry of its own (two apps in one process never mix)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("tlcv_requests", "HTTP requests answered.",
                                ["method", "route", "code"], registry=self.registry)  # fmt: skip
        self.errors = Counter("tlcv_request_errors", "Requests answered 4xx or 5xx, by code.",
                              ["route", "code"], registry=self.registry)  # fmt: skip
        self.latency = Histogram("tlcv_request_duration_seconds", "Time to answer a request.",
                                 ["route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)  # fmt: skip
        self.in_flight = Gauge("tlcv_inference_in_flight", "Inference requests waiting or "
                               "running.", registry=self.registry)  # fmt: skip

    def observe(self, method: str, route: str, code: int, seconds: float) -> None:
        self.requests.labels(method, route, str(code)).inc()
        self.latency.labels(route).observe(seconds)
        if code >= 400:
            self.errors.labels(route, str(code)).inc()

    def text(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


async def _json(send, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    head = [(b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), *(headers or [])]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class Access:
    """ASGI middleware, outermost: every answer is counted (the inner limits' refusals too),
    and a request without the key never reaches the app."""

    def __init__(self, app, api_key: str | None, metrics: Metrics, routes: set[str]):
        self.app, self.metrics, self.routes = app, metrics, routes
        self.token = f"Bearer {api_key}".encode() if api_key else None

    def _authorized(self, scope) -> bool:
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        return hmac.compare_digest(given, self.token)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        route = path if path in self.routes else "other"  # unknown paths: one label, bounded
        status, start = 500, time.perf_counter()

        async def counted_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            if self.token is not None and path not in OPEN_ROUTES and not self._authorized(scope):
                await _json(counted_send, 401, "missing or wrong API key: send 'Authorization: "
                            "Bearer KEY'", [(b"www-authenticate", b"Bearer")])  # fmt: skip
                return
            await self.app(scope, receive, counted_send)
        finally:
            self.metrics.observe(scope.get("method", ""), route, status,
                                 time.perf_counter() - start)  # fmt: skip


class Admission:
    """At most ``max_pending`` inference requests at once, each answered within
    ``timeout`` seconds (its wait for the model included) or refused with a JSON message."""

    def __init__(self, max_pending: int, timeout: float, metrics: Metrics):
        self.max_pending, self.timeout, self.metrics = max_pending, timeout, metrics
        self.pending = 0  # touched only on the event loop: no lock needed

    async def run(self, function, *args):
        if self.pending >= self.max_pending:
            raise HTTPException(
                429,
                f"busy: {self.pending} requests are already waiting for the model; retry shortly",
                headers={"Retry-After": "1"},
            )
        self.pending += 1
        self.metrics.in_flight.inc()
        try:
            return await asyncio.wait_for(run_in_threadpool(function, *args), self.timeout)
        except TimeoutError:
            raise HTTPException(
                503,
                f"no answer within {self.timeout:g} s: the server is overloaded; retry later",
                headers={"Retry-After": "5"},
            ) from None
        finally:
            self.pending -= 1
            self.metrics.in_flight.dec()
