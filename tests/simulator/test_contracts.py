"""Contract details and qualification against the simulated security master."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from ib_insync import Contract, Stock

from backend.ibkr_simulator import load_instruments


async def test_qualify_nvda_fills_conid_and_primary_exchange(ib):
    [nvda] = await ib.qualifyContractsAsync(Stock("NVDA", "SMART", "USD"))
    assert nvda.conId == 4815747
    assert nvda.primaryExchange == "NASDAQ"
    assert nvda.exchange == "SMART"
    assert nvda.currency == "USD"


@pytest.mark.parametrize("exchange", ["NYSE", "SMART"])
async def test_nyse_stock_qualifies_on_primary_or_smart(ib, exchange):
    [jpm] = await ib.qualifyContractsAsync(Stock("JPM", exchange, "USD"))
    assert jpm.primaryExchange == "NYSE"
    assert jpm.conId > 0


async def test_lookup_by_conid_alone(ib):
    [found] = await ib.qualifyContractsAsync(Contract(conId=265598))
    assert found.symbol == "AAPL"
    assert found.secType == "STK"


async def test_unknown_symbol_gives_empty_result_and_error_200(ib):
    errors = []
    ib.errorEvent += lambda req_id, code, text, contract: errors.append((code, text))
    assert await ib.qualifyContractsAsync(Stock("NOPE", "SMART", "USD")) == []
    assert (200, "No security definition has been found for the request") in errors


@pytest.mark.parametrize("contract", [
    Stock("NVDA", "NYSE", "USD"),  # wrong primary exchange
    Stock("NVDA", "SMART", "EUR"),  # wrong currency
    Contract(secType="OPT", symbol="NVDA", exchange="SMART", currency="USD"),
])
async def test_mismatched_contract_fields_are_unknown(ib, contract):
    assert await ib.reqContractDetailsAsync(contract) == []


async def test_contract_details_carry_exchange_hours(ib):
    [details] = await ib.reqContractDetailsAsync(Stock("NVDA", "SMART", "USD"))
    assert details.timeZoneId == "US/Eastern"
    assert details.minTick == 0.01
    assert details.longName == "NVIDIA CORP"
    eastern = ZoneInfo("US/Eastern")
    liquid = details.liquidSessions()
    trading = details.tradingSessions()
    # The fixed clock is Monday 2025-12-01: a full week of regular sessions follows.
    assert liquid[0].start == dt.datetime(2025, 12, 1, 9, 30, tzinfo=eastern)
    assert liquid[0].end == dt.datetime(2025, 12, 1, 16, 0, tzinfo=eastern)
    assert trading[0].start == dt.datetime(2025, 12, 1, 4, 0, tzinfo=eastern)
    assert trading[0].end == dt.datetime(2025, 12, 1, 20, 0, tzinfo=eastern)
    assert len(liquid) == 5  # Mon-Fri; the weekend is CLOSED
    assert "20251206:CLOSED" in details.liquidHours


def test_bundled_instruments_cover_both_exchanges_and_a_recent_listing():
    instruments = [i for i in load_instruments()
                   if i.sec_type == "STK" and i.stock_type == "COMMON"]
    assert len(instruments) >= 20
    assert {i.primary_exchange for i in instruments} == {"NASDAQ", "NYSE"}
    assert len({i.con_id for i in instruments}) == len(instruments)
    assert any(i.head_timestamp.year >= 2024 for i in instruments)
    assert all(i.currency == "USD" and i.start_price > 0 for i in instruments)


async def test_contract_requests_are_counted(ib, gateway):
    before = gateway.get_stats()["contract_requests"]
    await ib.qualifyContractsAsync(Stock("KO", "SMART", "USD"), Stock("NOPE", "SMART", "USD"))
    assert gateway.get_stats()["contract_requests"] == before + 2
