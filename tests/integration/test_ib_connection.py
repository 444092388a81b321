"""The gateway connection's keeper: shutdown ends it, even when a cancel gets lost."""

import asyncio

from backend.ibkr.connection import IBConnection


class LosesOneCancel(IBConnection):
    """Drops the first cancel that reaches a connect, as Python 3.11's asyncio.wait_for (inside
    ib_insync's connectAsync) does when the cancel arrives as the connect completes."""

    lost_cancels = 0

    async def ensure_connected(self):
        try:
            return await super().ensure_connected()
        except asyncio.CancelledError:
            if self.lost_cancels:
                raise
            self.lost_cancels += 1
            return self.ib


async def test_close_ends_a_keeper_that_lost_its_cancel(sim):
    connection = LosesOneCancel("127.0.0.1", sim.port, 4711, connect_timeout=3)
    connection.start_keeping_connected()
    await asyncio.sleep(0)  # the keeper is inside its first connect

    closing = asyncio.ensure_future(connection.close())
    await asyncio.wait({closing}, timeout=10)

    assert closing.done(), "close() still waits for a keeper that goes on connecting"
    assert connection.lost_cancels == 1
    assert not connection.connected


async def test_a_closed_connection_keeps_itself_connected_again_when_asked(sim):
    connection = IBConnection("127.0.0.1", sim.port, 4712, connect_timeout=3)
    connection.start_keeping_connected()
    await connection.close()

    connection.start_keeping_connected()
    for _ in range(100):
        if connection.connected:
            break
        await asyncio.sleep(0.05)
    assert connection.connected
    await connection.close()
    assert not connection.connected
