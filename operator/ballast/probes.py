"""The operator's own health endpoints, up before kopf starts.

``/healthz`` answers while the event loop does: the liveness probe. ``/readyz`` answers 200 once this
replica can answer admission (its indexes are filled and its webhook server listens, leader or not;
the webhook Service routes to it then) and 503 with the reason otherwise, as while it drains on SIGTERM.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


class ProbeServer:
    def __init__(self, port: int, address: str, readiness: Callable[[], str | None]) -> None:
        """``readiness`` returns None when ready, else why not."""
        self.port, self.address, self._readiness = port, address, readiness
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.get("/healthz", self._healthz), web.get("/readyz", self._readyz)])
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.address, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        problem = self._readiness()
        return web.Response(text="ok\n") if problem is None else web.Response(status=503, text=f"{problem}\n")
