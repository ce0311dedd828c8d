"""A polite, resilient HTTP client for the web sources. Pure module (requests; no Dagster).

Timeouts, retries with exponential backoff on connection errors, time-outs, 429 and 5xx (honouring Retry-After),
a minimum interval between requests, a User-Agent, and error messages that never contain a secret: every
message built here passes through `redact`, which masks the values the client was told are secret.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import requests

USER_AGENT = "femo-pipeline/0.1 (+https://github.com/; research pipeline; polite client)"
RETRY_STATUSES = {429, 500, 502, 503, 504}


class WebError(RuntimeError):
    """A request failed for good (after retries where that made sense); the message is safe to log."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class _RedactingFilter(logging.Filter):
    """Masks registered secrets in log records of the HTTP libraries (urllib3 logs full URLs at DEBUG level,
    and Pixabay wants its key in the query string)."""

    secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            masked = redact(message, self.secrets)
            if masked != message:
                record.msg, record.args = masked, ()
        return True


_FILTER = _RedactingFilter()
for _name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
    logging.getLogger(_name).addFilter(_FILTER)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


@dataclass
class PoliteClient:
    timeout: float = 20.0
    max_retries: int = 4
    backoff: float = 1.0  # first wait; doubles each retry, with jitter
    max_wait: float = 60.0  # cap on any single wait, Retry-After included
    min_interval: float = 1.0  # at least this long between the starts of two requests
    user_agent: str = USER_AGENT
    secrets: tuple[str, ...] = ()
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)
    waits: list[float] = field(default_factory=list)  # every wait taken, for logs and tests

    def __post_init__(self) -> None:
        _FILTER.secrets.update(s for s in self.secrets if s)
        self._lock = threading.Lock()
        self._last_start = 0.0

    def _pace(self) -> None:
        with self._lock:
            gap = self.min_interval - (time.monotonic() - self._last_start)
            if gap > 0:
                self.sleep(gap)
            self._last_start = time.monotonic()

    def _wait(self, seconds: float) -> None:
        seconds = min(seconds, self.max_wait)
        self.waits.append(seconds)
        self.sleep(seconds)

    def get(self, url: str, params: dict | None = None, headers: dict | None = None, stream: bool = False) -> requests.Response:
        """GET with retries. Returns a 2xx response; raises WebError (message redacted) otherwise."""
        all_headers = {"User-Agent": self.user_agent, **(headers or {})}
        # the full URL (query included) for messages, with every secret masked
        safe_url = redact(requests.Request("GET", url, params=params).prepare().url or url, self.secrets)
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            self._pace()
            try:
                response = self.session.get(url, params=params, headers=all_headers, timeout=self.timeout, stream=stream)
            except requests.Timeout:
                last = f"timed out after {self.timeout:g} s"
            except requests.ConnectionError as exc:
                last = f"connection failed ({type(exc).__name__})"
            else:
                if response.status_code < 400:
                    return response
                body = redact(response.text[:200], self.secrets).strip().replace("\n", " ")
                last = f"HTTP {response.status_code}" + (f": {body}" if body else "")
                if response.status_code not in RETRY_STATUSES:
                    raise WebError(f"GET {safe_url} failed: {last}", response.status_code)
                if attempt < self.max_retries:
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    if wait is not None:
                        self._wait(wait)
                        continue
            if attempt < self.max_retries:
                self._wait(self.backoff * 2**attempt * (1 + random.random() * 0.25))
        raise WebError(f"GET {safe_url} failed after {self.max_retries + 1} attempts: {last}")
