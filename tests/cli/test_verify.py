"""populate_market_cache.py --verify and --repair against a simulator whose clock moves: drift a
split left in a cache that has not fetched since is found (exit 1), repaired (exit 0 and the
action recorded), and found gone; DEBUG_MODE and bad flags exit 2 before IBKR is asked."""

from __future__ import annotations

import io
from contextlib import contextmanager

import httpx
import pytest
import respx

from backend.cli.populate import main
from backend.storage.database import Database
from backend.storage.market_data_repository import BarFilter, MarketDataCacheRepository
from tests.cli.conftest import CliRun
from tests.support.app import make_container, make_settings
from tests.support.cache_api import api_client
from tests.support.gateway import FakeClock
from tests.support.gateway import evening as at
from tests.support.gateway import move_clock as move
from tests.support.migrations import migrate_to_head

# From 2024-05-31, 150 days back starts at 2024-01-02.
DAYS_BEFORE_THE_SPLIT = "150"
BACKEND = "http://backend.test"


@pytest.fixture
def migrated_sqlite_url(sqlite_url) -> str:
    migrate_to_head(sqlite_url)
    return sqlite_url


class MovingCli:
    """Runs main() in-process, as one process of the script, at the clock's time."""

    def __init__(self, database_url: str, sim, clock: FakeClock) -> None:
        self.database_url, self.sim, self.clock = database_url, sim, clock

    def __call__(self, *argv: str, **overrides) -> CliRun:
        settings = make_settings(self.database_url, self.sim.port, **overrides)
        # Building a container wires the API's routes to it: with --api-url the backend's must
        # stay wired, and the script builds none then.
        container = None if "--api-url" in argv else make_container(settings, self.clock)
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main(
            list(argv), settings=settings, container=container, stdout=stdout, stderr=stderr
        )
        return CliRun(code, stdout.getvalue(), stderr.getvalue())

    def actions(self) -> list:
        database = Database(self.database_url)
        try:
            return MarketDataCacheRepository(database).corporate_actions(BarFilter(symbol="NVDA"))
        finally:
            database.dispose()


def verified(run: CliRun) -> dict:
    (event,) = [event for event in run.events() if event["event"] == "verify"]
    return event


def test_verify_finds_the_split_repair_heals_it(migrated_database_url, moving_sim):
    clock = FakeClock(at(2024, 5, 31))
    cli = MovingCli(migrated_database_url, moving_sim, clock)
    filled = cli("--symbols", "NVDA", "--days-back", DAYS_BEFORE_THE_SPLIT, "--json")
    assert filled.exit_code == 0, filled.stderr

    clean = cli("--symbols", "NVDA", "--verify", "--json")
    assert clean.exit_code == 0, clean.stderr
    assert (verified(clean)["drift"], verified(clean)["bars_drifted"]) == (False, 0)
    assert verified(clean)["bars_compared"] > 0

    move(moving_sim, clock, at(2024, 7, 31))
    requests = moving_sim.stats()["historical_requests"]
    found = cli("--symbols", "NVDA", "--verify", "--verify-samples", "2", "--json")
    assert found.exit_code == 1, found.stdout + found.stderr
    event = verified(found)
    assert event["drift"] is True and event["healed"] is None
    assert event["segments_checked"] == 2
    assert event["bars_drifted"] == event["bars_compared"] > 0
    assert event["factor"] == pytest.approx(10.0)
    assert found.summary()["unrepaired"] == 1 and found.summary()["exit_code"] == 1
    # Two segments asked for, within the pacing budget; nothing healed.
    assert 1 <= moving_sim.stats()["historical_requests"] - requests <= 4
    assert cli.actions() == []

    repaired = cli("--symbols", "NVDA", "--repair", "--json")
    assert repaired.exit_code == 0, repaired.stdout + repaired.stderr
    assert verified(repaired)["healed"] == "rescaled"
    assert [(a.kind, a.healed, a.factor) for a in cli.actions()] == [("split", "rescaled", 10.0)]

    again = cli("--symbols", "NVDA", "--verify", "--json")
    assert again.exit_code == 0
    assert verified(again)["drift"] is False


def test_plain_output_names_the_drift_and_what_to_do(migrated_sqlite_url, moving_sim):
    clock = FakeClock(at(2024, 5, 31))
    cli = MovingCli(migrated_sqlite_url, moving_sim, clock)
    assert cli("--symbols", "NVDA", "--days-back", "30").exit_code == 0
    move(moving_sim, clock, at(2024, 7, 31))

    run = cli("--symbols", "NVDA,AAPL", "--verify")

    assert run.exit_code == 1
    lines = run.stdout.splitlines()
    (nvda,) = [line for line in lines if line.startswith("NVDA 1d: ")]
    assert "drift:" in nvda and "cached/IBKR = 10" in nvda and "run with --repair" in nvda
    assert "AAPL 1d: nothing cached to verify" in lines
    assert "2 series verified, 1 with drift, 1 not repaired" in run.stdout


def test_debug_mode_never_verifies(migrated_sqlite_url, moving_sim):
    clock = FakeClock(at(2024, 5, 31))
    cli = MovingCli(migrated_sqlite_url, moving_sim, clock)
    assert cli("--symbols", "NVDA", "--days-back", "30").exit_code == 0
    requests = moving_sim.stats()["historical_requests"]

    run = cli("--symbols", "NVDA", "--repair", DEBUG_MODE=True)

    assert run.exit_code == 2
    assert "DEBUG_MODE never contacts IBKR" in run.stderr
    assert moving_sim.stats()["historical_requests"] == requests


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--verify", "--verify-samples", "0"], "--verify-samples: must be between 1 and 20"),
        (["--verify", "--verify-samples", "x"], "--verify-samples: 'x' is not a whole number"),
        (["--verify-samples", "3"], "--verify-samples: only with --verify or --repair"),
        (["--repair", "--days-back", "5"], "--days-back: not with --repair"),
        (["--verify", "--force"], "--force: not with --verify"),
        (["--verify", "--dry-run"], "--dry-run: not with --verify"),
    ],
)
def test_bad_verify_flags_exit_2(migrated_sqlite_url, argv, message, capsys):
    settings = make_settings(migrated_sqlite_url, 1)
    with pytest.raises(SystemExit) as exited:
        main(["--symbols", "NVDA", *argv], settings=settings)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def forwarding_to(backend):
    """A respx side effect answering the CLI's requests with the app behind a TestClient."""

    def forward(request: httpx.Request) -> httpx.Response:
        # The TestClient's own loopback Host, which the app's ALLOWED_HOSTS accepts.
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        answer = backend.request(
            request.method, request.url.path, content=request.content, headers=headers
        )
        return httpx.Response(answer.status_code, json=answer.json())

    return forward


@contextmanager
def backend_at(database_url: str, sim, clock: FakeClock, **overrides):
    """The app on the database, reached by the CLI at BACKEND; the simulator's control API for
    real."""
    # A router of its own: routes added to respx's global one outlive the context.
    with (
        api_client(database_url, sim.port, clock, **overrides) as (backend, _),
        respx.mock(assert_all_called=False) as router,
    ):
        router.route(host="backend.test").mock(side_effect=forwarding_to(backend))
        router.route(host="127.0.0.1").pass_through()
        yield


def test_verify_through_a_running_backend(migrated_sqlite_url, moving_sim):
    """--api-url: one verify job on the backend, followed to its end; the same exit codes."""
    clock = FakeClock(at(2024, 5, 31))
    cli = MovingCli(migrated_sqlite_url, moving_sim, clock)
    assert cli("--symbols", "NVDA", "--days-back", "30").exit_code == 0
    move(moving_sim, clock, at(2024, 7, 31))

    with backend_at(migrated_sqlite_url, moving_sim, clock):
        found = cli("--symbols", "NVDA", "--verify", "--json", "--api-url", BACKEND)
        assert found.exit_code == 1, found.stdout + found.stderr
        assert verified(found)["factor"] == pytest.approx(10.0)

        repaired = cli("--symbols", "NVDA", "--repair", "--json", "--api-url", BACKEND)
        assert (repaired.exit_code, verified(repaired)["healed"]) == (0, "rescaled")

    with backend_at(migrated_sqlite_url, moving_sim, clock, DEBUG_MODE=True):
        refused = cli("--symbols", "NVDA", "--verify", "--api-url", BACKEND)
        assert refused.exit_code == 2
        assert "DEBUG_MODE" in refused.stderr
