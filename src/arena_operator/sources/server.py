"""The operator's HTTP server: artifacts read-only to worker pods (only from the store directory), /healthz and
/metrics."""

from __future__ import annotations

import re

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .store import ArtifactStore

_PATH = re.compile(r"^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*/[0-9a-f]{64}\.tar\.gz$")
PREFIX = "/artifacts/"


def build_app(store: ArtifactStore, registry: CollectorRegistry | None = None) -> web.Application:
    async def artifact(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        if not _PATH.match(relative):
            raise web.HTTPNotFound()
        path = (store.root / relative).resolve()
        if store.root not in path.parents or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "application/gzip",
                                               "Cache-Control": "public, max-age=31536000, immutable"})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(_request: web.Request) -> web.Response:
        assert registry is not None
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get(PREFIX + "{path:.+}", artifact)
    app.router.add_get("/healthz", healthz)
    if registry is not None:
        app.router.add_get("/metrics", metrics)
    return app


class ArtifactServer:
    """Runs inside the operator's event loop, started and stopped with it."""

    def __init__(self, store: ArtifactStore, host: str, port: int, registry: CollectorRegistry | None = None) -> None:
        self.store = store
        self.registry = registry
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        self._runner = web.AppRunner(build_app(self.store, self.registry), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # the real port when 0 was asked for
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
