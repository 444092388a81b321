"""HTTP client for a running backend's cache refresh jobs (the CLI's --api-url mode)."""

from __future__ import annotations

from typing import Any

import httpx

from backend.market_data.domain import SecType, SeriesKey

REFRESH_PATH = "/api/market-data/cache/refresh"
VERIFY_PATH = "/api/market-data/cache/verify"
UNFINISHED = ("queued", "running")
# A job whose process stopped; --resume takes it over.
INTERRUPTED = "interrupted"


class BackendError(Exception):
    """The backend could not be asked, or refused; `exit_code` is what the CLI exits with."""

    def __init__(self, message: str, code: str, exit_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


class RefreshApiClient:
    def __init__(self, api_url: str, token: str | None, timeout_s: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout_s)

    def __enter__(self) -> RefreshApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    def start(self, series: list[SeriesKey], days_back: int | None, force: bool) -> dict[str, Any]:
        """Start one refresh job for series that differ only in symbol (and an FX pair's quote
        currency); the backend answers 202 with the job."""
        first = series[0]
        fx = first.sec_type == SecType.CASH
        body: dict[str, Any] = {
            # An FX pair as BASE.QUOTE, so pairs of different quote currencies share a job.
            "symbols": [f"{one.symbol}.{one.currency}" if fx else one.symbol for one in series],
            "sec_type": first.sec_type,
            "exchange": first.exchange,
            "currency": None if fx else first.currency,
            "expiry": first.expiry or None,
            "data_type": first.data_type,
            "what_to_show": first.what_to_show,
            "use_rth": first.use_rth,
            "days_back": days_back,
            "force": force,
        }
        # Left out, the backend's defaults apply: the bar size's days back, the pair's currency.
        body = {name: value for name, value in body.items() if value is not None}
        return self._job(self._call("POST", REFRESH_PATH, json=body, expected=(200, 202)))

    def start_verify(self, series: list[SeriesKey], samples: int, repair: bool) -> dict[str, Any]:
        """Start one verify job for series that differ only in symbol (and an FX pair's quote
        currency); the backend answers 202 with the job, 409 in DEBUG_MODE."""
        body = _series_body(series) | {"samples": samples, "repair": repair}
        return self._job(self._call("POST", VERIFY_PATH, json=body, expected=(200, 202)))

    def verify_job(self, job_id: str) -> dict[str, Any]:
        return self._job(self._call("GET", f"{VERIFY_PATH}/{job_id}", expected=(200,)))

    def resume(self, job_id: str) -> dict[str, Any]:
        """Resume a stored job on the backend; 404 and 409 (not resumable) exit 2."""
        path = f"{REFRESH_PATH}/{job_id}/resume"
        return self._job(self._call("POST", path, expected=(200, 202)))

    def job(self, job_id: str) -> dict[str, Any]:
        return self._job(self._call("GET", f"{REFRESH_PATH}/{job_id}", expected=(200,)))

    def _job(self, payload: Any) -> dict[str, Any]:
        """The job as answered, after checking it has the fields the CLI reads."""
        if _is_job(payload):
            return payload
        raise BackendError(
            f"{self.api_url} did not answer with a refresh job; is --api-url the address of "
            "the market-data backend?",
            "backend_error",
            1,
        )

    def _call(self, method: str, path: str, expected: tuple[int, ...], **kwargs: Any) -> Any:
        url = f"{self.api_url}{path}"
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise BackendError(
                f"cannot reach the backend at {self.api_url} ({exc}). Check that it is running "
                "(make run) and that --api-url names its address and port.",
                "backend_unreachable",
                1,
            ) from None
        except httpx.TimeoutException:
            raise BackendError(
                f"the backend at {self.api_url} did not answer {method} {url} in time",
                "backend_timeout",
                1,
            ) from None
        if response.status_code in expected:
            try:
                return response.json()
            except ValueError:
                return None
        detail = _detail(response)
        if response.status_code in (401, 403):
            raise BackendError(
                f"the backend refused the request ({response.status_code}: {detail}). Set "
                "API_TOKEN (environment or .env) to the token the backend was started with.",
                "unauthorized",
                2,
            )
        if response.status_code == 409 and _code(response) == "verify_in_debug_mode":
            raise BackendError(
                f"the backend refused to verify: {detail}", "verify_in_debug_mode", 2
            )
        if response.status_code == 404 and method == "POST" and path.endswith("/resume"):
            raise BackendError(f"the backend has no such job: {detail}", "not_found", 2)
        if response.status_code == 409 and _code(response) == "job_not_resumable":
            raise BackendError(f"the backend refused: {detail}", "job_not_resumable", 2)
        if response.status_code == 422:
            raise BackendError(
                f"the backend rejected the arguments: {detail}", "validation_error", 2
            )
        raise BackendError(
            f"{method} {url} answered {response.status_code}: {detail}",
            "backend_error",
            1,
        )


def _is_job(payload: Any) -> bool:
    if not isinstance(payload, dict):
        return False
    progress = payload.get("progress")
    return (
        isinstance(payload.get("job_id"), str)
        and isinstance(payload.get("status"), str)
        and isinstance(payload.get("results"), list)
        and isinstance(progress, dict)
        and all(isinstance(progress.get(key), int) for key in ("done", "total"))
    )


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:200] or response.reason_phrase
    if isinstance(detail, list):
        # The backend's 422 bodies list {field, message}.
        return "; ".join(
            f"{item.get('field')}: {item.get('message')}" if isinstance(item, dict) else str(item)
            for item in detail
        )
    return str(detail)


def _series_body(series: list[SeriesKey]) -> dict[str, Any]:
    """The request fields naming series that differ only in symbol (and an FX pair's currency);
    those left out take the backend's defaults."""
    first = series[0]
    fx = first.sec_type == SecType.CASH
    body: dict[str, Any] = {
        # An FX pair as BASE.QUOTE, so pairs of different quote currencies share a job.
        "symbols": [f"{one.symbol}.{one.currency}" if fx else one.symbol for one in series],
        "sec_type": first.sec_type,
        "exchange": first.exchange,
        "currency": None if fx else first.currency,
        "expiry": first.expiry or None,
        "data_type": first.data_type,
        "what_to_show": first.what_to_show,
        "use_rth": first.use_rth,
    }
    return {name: value for name, value in body.items() if value is not None}


def _code(response: httpx.Response) -> str | None:
    try:
        return response.json().get("code")
    except (ValueError, AttributeError):
        return None
