"""A real HTTP server on 127.0.0.1 for tests that play or need an outside party (an SMS gateway, a
MaaS app, LINE, a tablet's websocket)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def serve(app: Any, scheme: str = "http", **config: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop on a port the OS picks (the socket is bound
    before the server starts, so no other process can take the port); lifespan off (an app whose
    lifespan already ran; ``config`` overrides these uvicorn settings). Yields ``{scheme}://127.0.0.1:{port}``."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, **{"lifespan": "off", "log_level": "warning", **config}))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                await task  # raises what stopped it
            await asyncio.sleep(0.01)
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
