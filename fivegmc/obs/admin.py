"""The admin HTTP server: ``/healthz``, ``/metrics`` (Prometheus text), and routes that the
nodes add under ``/admin/v1/``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class AdminServer:
    def __init__(self, registry: CollectorRegistry, health: Callable[[], dict[str, Any]]) -> None:
        self.registry = registry
        self.health = health
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **self.health()})

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        sock = sockets[0].getsockname() if sockets else (host, port)
        self.address = (str(sock[0]), int(sock[1]))
        return self.address

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
