"""One API client's connection: handshake, then request dispatch until either side hangs up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from . import historical
from . import messages as msg
from .ibtime import connection_time, format_head_timestamp
from .instruments import ContractQuery, Instrument, matching_symbols
from .wire import ProtocolError, read_handshake, read_message

if TYPE_CHECKING:
    from .gateway import SimulatedGateway

logger = logging.getLogger(__name__)

SERVER_VERSION = 176  # the highest ib_insync 0.9.86 speaks
MIN_CLIENT_VERSION = 100
FIRST_ORDER_ID = 1

# Requests that need no answer; cancels matter only to a gateway that streams updates.
IGNORED = {msg.CANCEL_HEAD_TIMESTAMP, msg.REQ_AUTO_OPEN_ORDERS}


class ClientConnection:
    def __init__(self, gateway: SimulatedGateway, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.gateway = gateway
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        self._tasks: set[asyncio.Task] = set()
        # Historical requests not answered yet, by request id, so that a cancel closes one.
        self._historical_tasks: dict[int, asyncio.Task] = {}
        self._handlers = {
            msg.START_API: self._start_api,
            msg.REQ_POSITIONS: lambda f: self.send(msg.position_end()),
            msg.REQ_ACCOUNT_UPDATES: self._account_updates,
            msg.REQ_ACCOUNT_UPDATES_MULTI:
                lambda f: self.send(msg.account_update_multi_end(int(f[2]))),
            msg.REQ_EXECUTIONS: lambda f: self.send(msg.exec_details_end(int(f[2]))),
            msg.REQ_OPEN_ORDERS: lambda f: self.send(msg.open_order_end()),
            msg.REQ_ALL_OPEN_ORDERS: lambda f: self.send(msg.open_order_end()),
            msg.REQ_COMPLETED_ORDERS: lambda f: self.send(msg.completed_orders_end()),
            msg.REQ_IDS: lambda f: self.send(msg.next_valid_id(FIRST_ORDER_ID)),
            msg.REQ_MANAGED_ACCOUNTS: lambda f: self.send(msg.managed_accounts(gateway.account)),
            msg.REQ_CURRENT_TIME: lambda f: self.send(msg.current_time(gateway.now())),
            msg.REQ_CONTRACT_DETAILS: self._contract_details,
            msg.REQ_HEAD_TIMESTAMP: self._head_timestamp,
            msg.REQ_MATCHING_SYMBOLS: self._matching_symbols,
            msg.REQ_HISTORICAL_DATA: self._spawn_historical,
            msg.CANCEL_HISTORICAL_DATA: self._cancel_historical,
        }

    @property
    def peer(self) -> str:
        return str(self.writer.get_extra_info("peername"))

    async def serve(self) -> None:
        try:
            low, high = await read_handshake(self.reader)
            version = min(SERVER_VERSION, high)
            if version < max(low, MIN_CLIENT_VERSION):
                raise ProtocolError(f"unsupported client versions {low}..{high}")
            self.send(msg.server_hello(version, connection_time(self.gateway.now())))
            while True:
                self._dispatch(await read_message(self.reader))
                await self.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            logger.debug("client %s disconnected", self.peer)
        except ProtocolError as exc:
            logger.warning("client %s: %s", self.peer, exc)
        finally:
            self.close()
            for task in self._tasks:
                task.cancel()

    def close(self) -> None:
        self.gateway.release_client_id(self)
        if not self.writer.is_closing():
            self.writer.close()

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def send_error(self, req_id: int, code: int, text: str) -> None:
        if code < msg.FIRST_NOTICE_CODE:
            self.gateway.stats.errors_sent += 1
        self.send(msg.error(req_id, code, text))

    def _dispatch(self, fields: list[str]) -> None:
        try:
            msg_id = int(fields[0])
        except (IndexError, ValueError):
            logger.warning("client %s sent an unreadable message %r", self.peer, fields[:3])
            return
        handler = self._handlers.get(msg_id)
        if handler is None:
            if msg_id not in IGNORED:
                logger.debug("ignoring message %d from %s", msg_id, self.peer)
            return
        try:
            handler(fields)
        except Exception:
            # A malformed request must not take the connection down, as with the real gateway.
            logger.warning("bad message %d from %s", msg_id, self.peer, exc_info=True)
            self.send_error(msg.NO_REQUEST_ID, *msg.READ_ERROR)

    def _start_api(self, fields: list[str]) -> None:
        client_id = int(fields[2])
        if not self.gateway.claim_client_id(client_id, self):
            self.send_error(msg.NO_REQUEST_ID, *msg.CLIENT_ID_IN_USE)
            self.close()
            return
        self.client_id = client_id
        self.send(msg.managed_accounts(self.gateway.account))
        self.send(msg.next_valid_id(FIRST_ORDER_ID))
        for code, text in msg.FARM_NOTICES:
            self.send_error(msg.NO_REQUEST_ID, code, text)

    def _account_updates(self, fields: list[str]) -> None:
        subscribe, account = fields[2], fields[3] or self.gateway.account
        if subscribe not in ("1", "True", "true"):
            return
        for tag, value in (("NetLiquidation", "1000000.00"), ("TotalCashValue", "1000000.00")):
            self.send(msg.account_value(tag, value, "USD", account))
        self.send(msg.account_download_end(account))

    def _contract_details(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        query = ContractQuery.from_fields(fields[3:15])
        include_expired = historical.flag(fields[15]) if len(fields) > 15 else False
        gateway = self.gateway
        gateway.stats.contract_requests += 1
        now = gateway.now()
        found = gateway.registry.matches(query, now, include_expired)
        if not found:
            self.send_error(req_id, *msg.UNKNOWN_CONTRACT)
            return
        for instrument in found:
            self.send(msg.contract_details(req_id, instrument, query.exchange.upper(),
                                           gateway.model.sessions_for(instrument), now))
        self.send(msg.contract_details_end(req_id))

    def _head_timestamp(self, fields: list[str]) -> None:
        req_id = int(fields[1])
        query = ContractQuery.from_fields(fields[2:14])
        include_expired = historical.flag(fields[14])
        use_rth = historical.flag(fields[15])
        what_to_show = fields[16].upper()
        format_date = int(fields[17] or 1)
        self.gateway.stats.head_timestamp_requests += 1
        instrument = self._one_instrument(req_id, query, include_expired)
        if instrument is None:
            return
        try:
            historical.check_series(instrument, what_to_show, historical.DAY_SECONDS)
        except historical.RequestRejected as rejected:
            self.send_error(req_id, rejected.code, rejected.text)
            return
        if instrument.head_timestamp > self.gateway.now():
            rejected = historical.no_data_error(instrument, query.exchange, what_to_show)
            self.send_error(req_id, rejected.code, rejected.text)
            return
        head = self.gateway.model.first_bar_time(instrument, use_rth)
        self.send(msg.head_timestamp(req_id, format_head_timestamp(head, format_date)))

    def _matching_symbols(self, fields: list[str]) -> None:
        req_id, pattern = int(fields[1]), fields[2]
        self.send(msg.symbol_samples(req_id, matching_symbols(self.gateway.registry, pattern)))

    def _one_instrument(self, req_id: int, query: ContractQuery,
                        include_expired: bool) -> Instrument | None:
        """The instrument a request names, or None after sending IB's error 200."""
        found = self.gateway.registry.matches(query, self.gateway.now(), include_expired)
        if len(found) == 1:
            return found[0]
        if found:
            text = f"The contract description specified for {query.symbol.upper()} is ambiguous."
            self.send_error(req_id, msg.AMBIGUOUS_CONTRACT, text)
        else:
            self.send_error(req_id, *msg.UNKNOWN_CONTRACT)
        return None

    def _spawn_historical(self, fields: list[str]) -> None:
        request = historical.HistoricalRequest.from_fields(fields[1:])
        # Each request runs on its own so that a delayed answer does not hold up the others.
        task = asyncio.get_running_loop().create_task(self._historical(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._historical_tasks[request.req_id] = task
        task.add_done_callback(lambda _: self._historical_tasks.pop(request.req_id, None))

    def _cancel_historical(self, fields: list[str]) -> None:
        # A request that was cancelled is no longer open; its answer is never sent.
        task = self._historical_tasks.get(int(fields[2]))
        if task is not None:
            task.cancel()

    async def _historical(self, request: historical.HistoricalRequest) -> None:
        # The limit on open requests counts every connection together, as pacing does: the
        # conservative reading of IBKR's rules for several clients of one gateway.
        stats = self.gateway.stats
        if stats.open_historical_requests >= msg.MAX_OPEN_HISTORICAL_REQUESTS:
            stats.historical_requests += 1
            stats.simultaneous_limit_rejections += 1
            self.send_error(request.req_id, *msg.TOO_MANY_OPEN_HISTORICAL)
            return
        stats.open_historical_requests += 1
        stats.max_open_historical_requests = max(stats.max_open_historical_requests,
                                                 stats.open_historical_requests)
        try:
            await self._open_historical(request)
        finally:
            # Answered, refused, or its connection closed: it is no longer open. (After a
            # reset the counters are new; the open count carried over keeps this right.)
            self.gateway.stats.open_historical_requests -= 1

    async def _open_historical(self, request: historical.HistoricalRequest) -> None:
        gateway = self.gateway
        found = gateway.registry.matches(request.contract, gateway.now(),
                                         request.include_expired)
        instrument = found[0] if len(found) == 1 else None
        symbol = instrument.symbol if instrument else (
            request.contract.symbol.upper() or str(request.contract.con_id))
        gateway.stats.historical_requests += 1
        gateway.stats.requests_by_symbol[symbol] += 1
        if instrument is None:
            self._one_instrument(request.req_id, request.contract, request.include_expired)
            return

        fault = gateway.faults.take(symbol)
        if fault is not None:
            logger.info("fault %s for request %d (%s)", fault.kind, request.req_id, symbol)
            if fault.kind == "disconnect":
                self.close()
                return
            if fault.kind == "timeout":
                # Never answered: open until the client cancels it or hangs up.
                await asyncio.get_running_loop().create_future()
            if fault.kind == "no_data":
                rejected = historical.no_data_error(
                    instrument, request.contract.exchange, request.what_to_show)
                self.send_error(request.req_id, rejected.code, rejected.text)
                return
            if fault.kind == "pacing":
                gateway.stats.pacing_violations += 1
                self.send_error(request.req_id, *msg.PACING_VIOLATION)
                return
            await asyncio.sleep(fault.seconds or 0)

        try:
            now = gateway.now()
            plan = historical.plan(request, now)
            historical.check_contract(request, plan, instrument)
            broken_rule = gateway.pacing.admit(
                request.pacing_key(),
                (instrument.key, request.contract.exchange.upper(), request.what_to_show),
                request.pacing_weight)
            if broken_rule is not None:
                logger.info("pacing violation (%s) for request %d", broken_rule, request.req_id)
                gateway.stats.pacing_violations += 1
                self.send_error(request.req_id, *msg.PACING_VIOLATION)
                return
            answer = historical.answer(request, plan, instrument, gateway.model, now)
        except historical.RequestRejected as rejected:
            self.send_error(request.req_id, rejected.code, rejected.text)
            return
        except Exception:
            # Answer rather than leave the client waiting out its timeout.
            logger.exception("historical request %d failed", request.req_id)
            self.send_error(request.req_id, *msg.PROCESSING_ERROR)
            return
        self.send(msg.historical_data(request.req_id, answer, request.format_date))
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
