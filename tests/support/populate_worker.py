"""A separate process that fills one series, for the cross-process single-flight test.

Usage: python -m tests.support.populate_worker DATABASE_URL GATEWAY_PORT CLIENT_ID
Prints the cache outcome (hit or miss) on stdout.
"""

import asyncio
import sys
from datetime import timedelta

from tests.support.app import make_container, make_settings
from tests.support.gateway import FIXED_NOW, FakeClock


async def main(database_url: str, port: int, client_id: int) -> str:
    settings = make_settings(database_url, port, IB_CLIENT_ID=client_id)
    container = make_container(settings, FakeClock())
    service = container.market_data_service()
    result = await service.get_or_fetch_market_data(
        "JPM", "NYSE", "5m", FIXED_NOW - timedelta(days=365), FIXED_NOW
    )
    container.ib_connection().ib.disconnect()
    return result.outcome.value


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
