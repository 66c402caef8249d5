"""The message bus: events published after commit reach every subscriber (in-process)."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Sequence

from transit.events import Event

log = logging.getLogger("okuma.bus")
Handler = Callable[[Sequence[Event]], Awaitable[None]]


class InProcessBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, events: Sequence[Event]) -> None:
        for h in list(self._handlers):
            try:
                await h(events)
            except Exception:  # a failing subscriber must not undo a committed booking
                log.exception("event handler failed")
