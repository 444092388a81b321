"""Builders for the messages the gateway sends, field by field as the client decodes them."""

from __future__ import annotations

import datetime as dt

from .historical import HistoricalAnswer
from .ibtime import format_instant, format_intraday
from .instruments import CONTINUOUS_FUTURE, STOCK, Instrument, SymbolSample
from .sessions import SessionTable
from .wire import encode_message, encode_raw

# Incoming message ids
START_API = 71
REQ_POSITIONS = 61
REQ_ACCOUNT_UPDATES = 6
REQ_ACCOUNT_UPDATES_MULTI = 76
REQ_EXECUTIONS = 7
REQ_OPEN_ORDERS = 5
REQ_ALL_OPEN_ORDERS = 16
REQ_AUTO_OPEN_ORDERS = 15
REQ_COMPLETED_ORDERS = 99
REQ_IDS = 8
REQ_MANAGED_ACCOUNTS = 17
REQ_CURRENT_TIME = 49
REQ_CONTRACT_DETAILS = 9
REQ_HISTORICAL_DATA = 20
CANCEL_HISTORICAL_DATA = 25
REQ_MATCHING_SYMBOLS = 81
REQ_HEAD_TIMESTAMP = 87
CANCEL_HEAD_TIMESTAMP = 90

# Outgoing message ids
ACCOUNT_VALUE = 6
ERROR = 4
NEXT_VALID_ID = 9
CONTRACT_DETAILS = 10
MANAGED_ACCOUNTS = 15
HISTORICAL_DATA = 17
CURRENT_TIME = 49
CONTRACT_DETAILS_END = 52
SYMBOL_SAMPLES = 79
OPEN_ORDER_END = 53
ACCOUNT_DOWNLOAD_END = 54
EXEC_DETAILS_END = 55
POSITION_END = 62
ACCOUNT_UPDATE_MULTI_END = 74
HEAD_TIMESTAMP = 88
COMPLETED_ORDERS_END = 102

NO_REQUEST_ID = -1
# Codes 2100-2199 are status notices, not failures (ib_insync logs them as warnings).
FIRST_NOTICE_CODE = 2100

FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
UNKNOWN_CONTRACT = (200, "No security definition has been found for the request")
AMBIGUOUS_CONTRACT = 200  # "The contract description specified for <symbol> is ambiguous."
PACING_VIOLATION = (
    162, "Historical Market Data Service error message:Historical data request pacing violation")
READ_ERROR = (320, "Error reading request.")
PROCESSING_ERROR = (322, "Error processing request.")
# IBKR allows 50 historical requests open at once; the text is what users report IBKR sends
# (ib_insync#293), the code 322 ("Error processing request") a guess that matches its prefix.
MAX_OPEN_HISTORICAL_REQUESTS = 50
TOO_MANY_OPEN_HISTORICAL = (
    322, "Error processing request:Only 50 simultaneous API historical data requests allowed.")
CLIENT_ID_IN_USE = (
    326, "Unable to connect as the client id is already in use. Retry with a unique client id.")

ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,BENCHPX,COND,CONDORDER,DARKONLY,DAY,"
    "DEACT,DEACTDIS,DEACTEOD,DIS,GAT,GTC,GTD,GTT,HID,IBKRATS,ICE,IMB,IOC,LIT,LMT,LOC,MIDPX,MIT,"
    "MKT,MOC,MTL,NGCOMB,NODARK,NONALGO,OCA,OPG,OPGREROUT,PEGBENCH,PEGMID,POSTATS,POSTONLY,"
    "PREOPGRTH,PRICECHK,REL,REL2MID,RELPCTOFS,RPI,RTH,SCALE,SCALEODD,SCALERST,SIZECHK,SNAPMID,"
    "SNAPMKT,SNAPREL,STP,STPLMT,SWEEP,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF"
)
VALID_EXCHANGES = (
    "SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,ISLAND,DRCTEDGE,BEX,BATS,EDGEA,BYX,IEX,EDGX,"
    "FOXRIVER,PEARL,NYSENAT,LTSE,MEMX,IBEOS,OVERNIGHT,TPLUS0,PSX"
)
NON_STOCK_ORDER_TYPES = {
    "FUT": "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,"
           "DEACTEOD,GAT,GTC,GTD,GTT,HID,ICE,IOC,LIT,LMT,LTH,MIT,MKT,MTL,NGCOMB,NONALGO,OCA,"
           "PEGBENCH,SCALE,SCALERST,SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,"
           "TRAILMIT,WHATIF",
    "CASH": "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,CASHQTY,COND,CONDORDER,DAY,"
            "DEACT,DEACTDIS,DEACTEOD,GAT,GTC,GTD,GTT,HID,IOC,LIT,LMT,MIT,MKT,NONALGO,OCA,REL,"
            "RELPCTOFS,SCALE,SCALERST,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF",
    "CRYPTO": "ADJUST,ALERT,ALLOC,AVGCOST,BASKET,CASHQTY,COND,CONDORDER,DAY,DEACT,DEACTDIS,"
              "DEACTEOD,GAT,GTC,GTD,GTT,IOC,LMT,MKT,NONALGO,OCA,STP,STPLMT,WHATIF",
}
NON_STOCK_ORDER_TYPES["CONTFUT"] = NON_STOCK_ORDER_TYPES["FUT"]
MARKET_RULES = {"FUT": "67", "CONTFUT": "67", "CASH": "239", "CRYPTO": "2527", "IND": "3"}
# minSize, sizeIncrement, suggestedSizeIncrement: crypto trades in fractions of a coin.
SIZE_RULES = {"CRYPTO": ("0.0001", "0.0001", "0.0001"), "CASH": ("1", "1", "1")}
HOURS_DAYS_LISTED = 7


def error(req_id: int, code: int, text: str) -> bytes:
    # The trailing empty advancedOrderRejectJson is required from server version 166 on.
    return encode_message(ERROR, 2, req_id, code, text, "")


def server_hello(server_version: int, connection_time: str) -> bytes:
    return encode_message(server_version, connection_time)


def managed_accounts(accounts: str) -> bytes:
    return encode_message(MANAGED_ACCOUNTS, 1, accounts)


def next_valid_id(order_id: int) -> bytes:
    return encode_message(NEXT_VALID_ID, 1, order_id)


def current_time(now: dt.datetime) -> bytes:
    return encode_message(CURRENT_TIME, 1, int(now.timestamp()))


def position_end() -> bytes:
    return encode_message(POSITION_END, 1)


def open_order_end() -> bytes:
    return encode_message(OPEN_ORDER_END, 1)


def completed_orders_end() -> bytes:
    return encode_message(COMPLETED_ORDERS_END)


def account_value(tag: str, value: str, currency: str, account: str) -> bytes:
    return encode_message(ACCOUNT_VALUE, 2, tag, value, currency, account)


def account_download_end(account: str) -> bytes:
    return encode_message(ACCOUNT_DOWNLOAD_END, 1, account)


def account_update_multi_end(req_id: int) -> bytes:
    return encode_message(ACCOUNT_UPDATE_MULTI_END, 1, req_id)


def exec_details_end(req_id: int) -> bytes:
    return encode_message(EXEC_DETAILS_END, 1, req_id)


def contract_details_end(req_id: int) -> bytes:
    return encode_message(CONTRACT_DETAILS_END, 1, req_id)


def head_timestamp(req_id: int, timestamp: str) -> bytes:
    return encode_message(HEAD_TIMESTAMP, req_id, timestamp)


def contract_details(req_id: int, instrument: Instrument, exchange: str,
                     sessions: SessionTable, now: dt.datetime) -> bytes:
    """contractDetails (no version field from server version 164 on)."""
    today = now.astimezone(sessions.rule.zone).date()
    trading_hours = sessions.hours_string(today, HOURS_DAYS_LISTED, rth=False)
    liquid_hours = sessions.hours_string(today, HOURS_DAYS_LISTED, rth=True)
    if instrument.sec_type == STOCK:
        return _stock_details(req_id, instrument, exchange, sessions, trading_hours,
                              liquid_hours)
    shown = instrument
    if instrument.sec_type == CONTINUOUS_FUTURE:
        # IB describes a continuous future by its current contract under the CONTFUT type.
        shown = instrument.front_contract(now)
    last_trade = ""
    if shown.last_trade is not None:
        local = shown.last_trade.astimezone(sessions.rule.zone)
        last_trade = f"{local:%Y%m%d %H:%M:%S} {sessions.rule.zone_name}"
    futures = shown.last_trade is not None
    return encode_message(
        CONTRACT_DETAILS, req_id,
        instrument.symbol, instrument.sec_type, last_trade, 0, "",
        instrument.exchange, instrument.currency, shown.display_symbol,
        instrument.reported_trading_class, instrument.reported_trading_class,
        shown.con_id, _number(instrument.min_tick), instrument.multiplier,
        NON_STOCK_ORDER_TYPES.get(instrument.sec_type, ""), instrument.exchange, 1,
        instrument.under_con_id,
        instrument.long_name, "", shown.contract_month,  # longName, primaryExchange, month
        instrument.industry, instrument.category, "",  # industry, category, subcategory
        sessions.rule.zone_name, trading_hours, liquid_hours,
        "", "", 0,  # evRule, evMultiplier, secIdList count
        1, instrument.symbol if futures else "", "IND" if futures else "",  # aggGroup, under
        MARKET_RULES.get(instrument.sec_type, ""), shown.last_trade_date, "",
        *SIZE_RULES.get(instrument.sec_type, ("1", "1", "1")),
    )


def _stock_details(req_id: int, instrument: Instrument, exchange: str, sessions: SessionTable,
                   trading_hours: str, liquid_hours: str) -> bytes:
    market_name = instrument.reported_trading_class
    return encode_message(
        CONTRACT_DETAILS, req_id,
        instrument.symbol, "STK", "", 0, "",  # symbol, secType, lastTradeDate, strike, right
        exchange or "SMART", instrument.currency, instrument.symbol, market_name, market_name,
        instrument.con_id, 0.01, "",  # conId, minTick, multiplier
        ORDER_TYPES, VALID_EXCHANGES, 1, 0,  # ..., priceMagnifier, underConId
        instrument.long_name, instrument.primary_exchange, "",  # longName, primary, contractMonth
        instrument.industry, instrument.category, "",  # industry, category, subcategory
        sessions.rule.zone_name, trading_hours, liquid_hours,
        "", "", 0,  # evRule, evMultiplier, secIdList count
        1, "", "", "26", "", instrument.stock_type,  # aggGroup, under symbol/type, rules, stock
        "0.0001", "0.0001", "100",  # minSize, sizeIncrement, suggestedSizeIncrement
    )


def symbol_samples(req_id: int, found: list[SymbolSample]) -> bytes:
    """symbolSamples for reqMatchingSymbols; server version 176 adds description and issuerId."""
    fields: list = [SYMBOL_SAMPLES, req_id, len(found)]
    for sample in found:
        fields += [sample.con_id, sample.symbol, sample.sec_type, sample.primary_exchange,
                   sample.currency, len(sample.derivative_sec_types),
                   *sample.derivative_sec_types, sample.description, ""]
    return encode_message(*fields)


def _number(value: float) -> str:
    # repr keeps 5e-05 readable by the client's float() while avoiding 0.30000000000000004.
    return repr(value)


def historical_data(req_id: int, answer: HistoricalAnswer, format_date: int) -> bytes:
    bars = answer.bars
    if answer.daily:
        dates = [f"{d:%Y%m%d}" for d in answer.session_dates]
    else:
        dates = format_intraday(bars.start, format_date)
    header = "\0".join((
        str(HISTORICAL_DATA), str(req_id),
        format_instant(answer.start, format_date, answer.daily),
        format_instant(answer.end, format_date, answer.daily),
        str(len(bars)),
    )) + "\0"
    # Built as one string: a year of minute bars is a single multi-megabyte message.
    rows = "".join(
        f"{d}\0{o}\0{h}\0{lo}\0{c}\0{v}\0{w}\0{n}\0"
        for d, o, h, lo, c, v, w, n in zip(
            dates, bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
            bars.close.tolist(), bars.volume.tolist(), bars.wap.tolist(), bars.count.tolist(),
            strict=True)
    )
    return encode_raw(header + rows)
