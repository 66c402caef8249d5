"""A database blip while the webhook worker turns domain events into outbox rows must not lose the
events: the batch is kept and tried again at the next sweep (rows are keyed by event id, so a
second try makes no second row)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Served
from tests.integration.test_tomp import _maas
from tests.integration.test_tomp_webhooks import MaasApp, _commit, _hooks, _register, maas_app  # noqa: F401
from transit.feeds.tomp_webhooks import EVENT_TYPES, TompWebhooks


class FailsOnce:
    """A unit-of-work factory whose first use fails as a lost database connection would."""

    def __init__(self, real: Any) -> None:
        self.real, self.failures = real, 1

    def __call__(self, *args: Any, **kw: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database went away")
        return self.real(*args, **kw)


async def test_events_survive_a_database_blip(served: Served, maas_app: MaasApp) -> None:  # noqa: F811
    h = await _maas(served)
    served_hooks = _hooks(served)
    await _register(served, h, maas_app)
    bus = served.runtime.bus  # type: ignore[attr-defined]
    bus.unsubscribe(served_hooks.on_events)  # only the worker under test sends
    flaky = TompWebhooks(FailsOnce(served_hooks.uow), served_hooks.clock, operator_id="okuma", sweep_s=0.05)
    bus.subscribe(flaky.on_events, *EVENT_TYPES)
    try:
        tid, _ = await _commit(served, h)
        for _ in range(200):
            if any(b.get("operation") == "COMMIT" for b in maas_app.bodies(tid)):
                break
            await asyncio.sleep(0.05)
        await flaky.drain()
    finally:
        bus.unsubscribe(flaky.on_events)
        await flaky.close()
    assert [b.get("operation") or b.get("event") for b in maas_app.bodies(tid)] == ["COMMIT", "ASSIGN_ASSET"]
    assert flaky.uow.failures == 0  # the blip did happen
