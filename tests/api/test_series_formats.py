"""The series route in Parquet, Arrow IPC stream and CSV: the whole range in one body, chosen by
`format` or the Accept header, reading back to the frame the backend itself reads."""

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from backend.api.bar_formats import BarFormat, csv_body, negotiate
from backend.api.routes import market_data_cache
from backend.market_data.bar_columns import ARROW_SCHEMA, BarColumns
from backend.market_data.domain import Bar, SeriesKey
from backend.market_data.inventory import EARLIEST, LATEST
from backend.storage.database import Database
from backend.storage.market_data_repository import MarketDataCacheRepository
from tests.support.bars import store as store_bars
from tests.support.cache_api import api_client
from tests.support.gateway import FIXED_NOW
from tests.support.migrations import migrate_to_head
from tests.support.processes import (
    BackendProcess,
    app_environment,
    start_simulator_process,
)

CACHE = "/api/market-data/cache"
START = datetime(2025, 6, 2, 13, 30, tzinfo=UTC)
NVDA = SeriesKey("NVDA", "NASDAQ", "1m")
IBM = SeriesKey("IBM", "NYSE", "1m")
MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
    "csv": "text/csv; charset=utf-8",
}
EXTENSIONS = {"parquet": "parquet", "arrow": "arrows", "csv": "csv"}
COLUMNAR = list(MEDIA_TYPES)


def varied_bars(count: int) -> BarColumns:
    """Bars whose values all differ, with some wap, bar_count and volume missing and some bars
    not final: every column's nulls and dtypes have something to get wrong."""
    return BarColumns.from_bars(
        Bar(
            timestamp=START + timedelta(minutes=i),
            open=100.0 + i * 0.25,
            high=101.0 + i * 0.25,
            low=99.5 + i * 0.25,
            close=100.5 + i * 0.25,
            volume=float("nan") if i == 3 else 1000.0 + i,
            wap=None if i % 4 == 1 else 100.25 + i * 0.25,
            bar_count=None if i % 5 == 2 else 10 + i,
            is_final=i < count - 2,
        )
        for i in range(count)
    )


def seed(repository: MarketDataCacheRepository, series: SeriesKey, count: int) -> None:
    store_bars(repository, series, varied_bars(count), FIXED_NOW, ttl=timedelta(hours=1))


def stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def stored_frame(repository, series=NVDA, start=EARLIEST, end=LATEST) -> pd.DataFrame:
    """The frame the backend reads in-process."""
    return repository.read_columns(series, start, end).to_pandas()


def read_back(bar_format: str, body: bytes) -> pd.DataFrame:
    """A body as pandas reads it, the way a client would."""
    if bar_format == "parquet":
        return pd.read_parquet(io.BytesIO(body))
    if bar_format == "arrow":
        return pa.ipc.open_stream(body).read_all().to_pandas()
    frame = pd.read_csv(
        io.BytesIO(body),
        index_col="timestamp",
        parse_dates=["timestamp"],
        dtype={name: "float64" for name in ("open", "high", "low", "close", "volume", "wap")}
        | {"bar_count": "float64"},
    )
    # CSV carries no resolution; the frame's index is in nanoseconds.
    frame.index = frame.index.as_unit("ns")
    return frame


def field_errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {error["field"]: error["message"] for error in response.json()["detail"]}


@pytest.fixture
def cached(migrated_database_url):
    """40 one-minute NVDA bars on NASDAQ, 12 IBM bars on NYSE only."""
    with api_client(migrated_database_url) as (client, container):
        repository = container.market_data_repository()
        seed(repository, NVDA, 40)
        seed(repository, IBM, 12)
        yield client, repository


@pytest.mark.parametrize("bar_format", COLUMNAR)
@pytest.mark.parametrize("chosen_by", ["parameter", "accept"])
def test_each_format_reads_back_as_the_in_process_frame(cached, bar_format, chosen_by):
    client, repository = cached
    if chosen_by == "parameter":
        response = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "format": bar_format})
    else:
        accept = MEDIA_TYPES[bar_format].split(";")[0]
        response = client.get(
            f"{CACHE}/NVDA", params={"data_type": "1m"}, headers={"Accept": accept}
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA_TYPES[bar_format]
    assert response.headers["content-disposition"] == (
        f'attachment; filename="NVDA_1m.{EXTENSIONS[bar_format]}"'
    )
    assert "Accept" in response.headers["vary"].split(", ")
    expected = stored_frame(repository)
    assert len(expected) == 40
    pd.testing.assert_frame_equal(read_back(bar_format, response.content), expected)


def test_the_columnar_answer_is_not_a_page(cached):
    # More bars than the default JSON page would be irrelevant here; what matters is that a
    # columnar answer ignores paging and holds every bar of the range.
    client, repository = cached
    body = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "format": "parquet"}).content
    json_page = client.get(f"{CACHE}/NVDA", params={"data_type": "1m"}).json()
    assert len(pd.read_parquet(io.BytesIO(body))) == json_page["total"] == 40


def test_parquet_keeps_pandas_index_and_dtypes(cached):
    client, _ = cached
    body = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "format": "parquet"}).content
    frame = pd.read_parquet(io.BytesIO(body))
    assert frame.index.name == "timestamp"
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert frame.dtypes.to_dict() == {
        **{name: "float64" for name in ("open", "high", "low", "close", "volume", "wap")},
        "bar_count": "float64",
        "is_final": "bool",
    }
    # Missing values came through as missing, not as zeros or -1.
    assert frame["wap"].isna().sum() == 10
    assert frame["bar_count"].isna().sum() == 8
    assert frame["volume"].isna().sum() == 1


def test_the_arrow_stream_holds_the_values_of_to_arrow(cached):
    client, repository = cached
    body = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "format": "arrow"}).content
    table = pa.ipc.open_stream(body).read_all()
    expected = repository.read_columns(NVDA, EARLIEST, LATEST).to_arrow()
    # The time first, then the fields in the order of ARROW_SCHEMA; bar_count is a float, as
    # in the DataFrame, with the same nulls.
    assert table.column_names == ARROW_SCHEMA.names
    for name in ARROW_SCHEMA.names:
        wanted = expected[name]
        if name == "bar_count":
            wanted = wanted.cast(pa.float64())
        assert table[name].equals(wanted), name


def test_csv_is_iso_times_and_empty_fields_for_missing_values(cached):
    client, _ = cached
    text = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "format": "csv"}).text
    lines = text.splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume,wap,bar_count,is_final"
    assert len(lines) == 41
    # Bar 1 has no wap; bar 2 no bar_count; bar 3 no volume; the last two are not final.
    assert (
        lines[2]
        == f"{stamp(START + timedelta(minutes=1))},100.25,101.25,99.75,100.75,1001,,11,true"
    )
    assert lines[3].split(",")[7] == ""
    assert lines[4].split(",")[5] == ""
    assert lines[-1].endswith(",false")


@pytest.mark.parametrize("bar_format", COLUMNAR)
def test_date_filters_cut_exactly(cached, bar_format):
    client, repository = cached
    stamps = repository.read_columns(NVDA, EARLIEST, LATEST).timestamps()
    params = {
        "data_type": "1m",
        "format": bar_format,
        "date_from": stamp(stamps[5]),
        "date_to": stamp(stamps[29]),
    }
    response = client.get(f"{CACHE}/NVDA", params=params)
    assert response.status_code == 200, response.text
    expected = stored_frame(repository).iloc[5:30]
    pd.testing.assert_frame_equal(read_back(bar_format, response.content), expected)


def test_without_an_exchange_the_symbol_is_found_where_it_is_cached(cached):
    client, repository = cached
    response = client.get(f"{CACHE}/IBM", params={"data_type": "1m", "format": "parquet"})
    assert response.status_code == 200, response.text
    assert 'filename="IBM_1m.parquet"' in response.headers["content-disposition"]
    frame = pd.read_parquet(io.BytesIO(response.content))
    pd.testing.assert_frame_equal(frame, stored_frame(repository, IBM))


@pytest.mark.parametrize("bar_format", COLUMNAR)
def test_nothing_cached_is_404_with_the_populate_command(cached, bar_format):
    client, _ = cached
    for params in (
        {"data_type": "1m", "format": bar_format, "exchange": "NYSE"},
        {"data_type": "1h", "format": bar_format},
        {"data_type": "1m", "format": bar_format, "date_from": "2030-01-01"},
    ):
        response = client.get(f"{CACHE}/NVDA", params=params)
        assert response.status_code == 404, response.text
        body = response.json()
        assert body["code"] == "not_cached"
        assert "make populate-cache SYMBOLS=NVDA" in body["populate_command"]


def test_an_accept_naming_no_format_is_406_listing_the_choices(cached):
    client, _ = cached
    response = client.get(
        f"{CACHE}/NVDA", params={"data_type": "1m"}, headers={"Accept": "application/xml"}
    )
    assert response.status_code == 406
    body = response.json()
    assert body["code"] == "not_acceptable"
    for media_type in [*MEDIA_TYPES.values(), "application/json"]:
        assert media_type.split(";")[0] in body["detail"]
    assert "format=json|parquet|arrow|csv" in body["detail"]


def test_format_wins_over_accept(cached):
    client, _ = cached
    csv = client.get(
        f"{CACHE}/NVDA",
        params={"data_type": "1m", "format": "csv"},
        headers={"Accept": "application/xml"},
    )
    assert csv.status_code == 200
    assert csv.headers["content-type"] == MEDIA_TYPES["csv"]
    as_json = client.get(
        f"{CACHE}/NVDA",
        params={"data_type": "1m", "format": "json"},
        headers={"Accept": "application/vnd.apache.parquet"},
    )
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json()["total"] == 40


def test_json_is_the_same_body_however_it_is_asked_for(cached):
    client, _ = cached
    url = f"{CACHE}/NVDA"
    plain = client.get(url, params={"data_type": "1m", "limit": 7})
    assert plain.headers["content-type"] == "application/json"
    for params, headers in (
        ({"format": "json"}, {}),
        ({}, {"Accept": "application/json"}),
        ({}, {"Accept": "*/*"}),
        ({}, {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}),
    ):
        response = client.get(
            url, params={"data_type": "1m", "limit": 7, **params}, headers=headers
        )
        assert response.status_code == 200
        assert response.content == plain.content, (params, headers)


@pytest.mark.parametrize("bar_format", COLUMNAR)
def test_limit_and_cursor_are_refused_with_a_columnar_format(cached, bar_format):
    client, _ = cached
    cursor = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "limit": 5}).json()[
        "next_cursor"
    ]
    errors = field_errors(
        client.get(
            f"{CACHE}/NVDA",
            params={"data_type": "1m", "format": bar_format, "limit": 5, "cursor": cursor},
        )
    )
    assert set(errors) == {"query.limit", "query.cursor"}
    assert "JSON pages only" in errors["query.limit"]
    assert "format=json" in errors["query.cursor"]
    # Asked for by Accept alike.
    accept = {"Accept": MEDIA_TYPES[bar_format].split(";")[0]}
    errors = field_errors(
        client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "limit": 5}, headers=accept)
    )
    assert set(errors) == {"query.limit"}


@pytest.mark.parametrize("bar_format", COLUMNAR)
def test_a_range_over_the_maximum_is_refused_before_any_bar_is_read(
    cached, bar_format, monkeypatch
):
    client, repository = cached
    monkeypatch.setattr(market_data_cache, "MAX_COLUMNAR_BARS", 30)
    reads = []
    read_columns = MarketDataCacheRepository.read_columns

    def counting_read(self, *args):
        reads.append(args)
        return read_columns(self, *args)

    monkeypatch.setattr(MarketDataCacheRepository, "read_columns", counting_read)
    errors = field_errors(
        client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "format": bar_format})
    )
    assert "40 bars, more than the 30" in errors["query.date_from"]
    assert "narrow date_from/date_to" in errors["query.date_from"]
    assert "format=json with limit and cursor" in errors["query.date_from"]
    assert reads == []
    # A range of 30 bars is within the maximum.
    stamps = repository.read_columns(NVDA, EARLIEST, LATEST).timestamps()
    narrowed = client.get(
        f"{CACHE}/NVDA",
        params={"data_type": "1m", "format": bar_format, "date_to": stamp(stamps[29])},
    )
    assert narrowed.status_code == 200, narrowed.text
    assert len(read_back(bar_format, narrowed.content)) == 30


def test_the_openapi_schema_documents_the_formats(cached):
    client, _ = cached
    route = client.get("/openapi.json").json()["paths"][f"{CACHE}/{{symbol}}"]["get"]
    content = route["responses"]["200"]["content"]
    assert set(content) == {
        "application/json",
        "application/vnd.apache.parquet",
        "application/vnd.apache.arrow.stream",
        "text/csv",
    }
    assert "406" in route["responses"]
    bar_format = next(p for p in route["parameters"] if p["name"] == "format")
    assert bar_format["in"] == "query"
    assert "pd.read_parquet" in route["description"]
    assert f"{market_data_cache.MAX_COLUMNAR_BARS:,}" in route["description"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, BarFormat.JSON),
        ("", BarFormat.JSON),
        ("*/*", BarFormat.JSON),
        ("application/*", BarFormat.JSON),
        ("application/json; charset=utf-8", BarFormat.JSON),
        ("text/*", BarFormat.CSV),
        ("TEXT/CSV", BarFormat.CSV),
        ("application/vnd.apache.arrow.stream", BarFormat.ARROW),
        # A type named outright beats the wildcard at equal q; a higher q beats both.
        ("*/*, application/vnd.apache.parquet", BarFormat.PARQUET),
        ("application/vnd.apache.parquet;q=0.5, text/csv", BarFormat.CSV),
        ("text/csv;q=0.2, application/json;q=0.1", BarFormat.CSV),
        # The most specific range decides: CSV refused although text/* accepts it.
        ("text/csv;q=0, text/*", None),
        ("application/xml", None),
        ("application/vnd.apache.arrow.file", None),
        ("not a media type", None),
        ("text/csv;q=high", None),
        ("text/csv;q=2", None),
        (",,,", None),
    ],
)
def test_negotiate_reads_the_accept_header(accept, expected):
    assert negotiate(accept) is expected


def test_pandas_reads_parquet_straight_from_the_url_of_a_running_server(tmp_path):
    # The issue's own line, over real HTTP: pandas fetches the URL itself (with urllib).
    database_url = f"sqlite:///{tmp_path / 'market_data.db'}"
    migrate_to_head(database_url)
    database = Database(database_url)
    repository = MarketDataCacheRepository(database)
    seed(repository, NVDA, 40)
    expected = stored_frame(repository)
    database.dispose()
    simulator = start_simulator_process()
    try:
        with BackendProcess(
            app_environment(database_url, simulator), tmp_path / "backend.log"
        ) as backend:
            frame = pd.read_parquet(f"{backend.url}{CACHE}/NVDA?data_type=1m&format=parquet")
    finally:
        simulator.stop()
    pd.testing.assert_frame_equal(frame, expected)


def test_csv_times_keep_their_microseconds_when_a_bar_has_them():
    bars = BarColumns.from_bars(
        Bar(START + timedelta(microseconds=offset), 1.0, 2.0, 0.5, 1.5, 10.0, None, 3, True)
        for offset in (0, 250)
    )
    rows = csv_body(bars).decode().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == [
        "2025-06-02T13:30:00.000000Z",
        "2025-06-02T13:30:00.000250Z",
    ]
    assert rows[0] == "2025-06-02T13:30:00.000000Z,1,2,0.5,1.5,10,,3,true"
