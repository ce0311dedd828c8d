"""A polite, resilient HTTP client for the web sources. Pure module (requests; no Dagster).

Timeouts, retries with exponential backoff on connection errors, time-outs, 429 and 5xx (honouring Retry-After),
a minimum interval between requests, a User-Agent, and error messages that never contain a secret: every
message built here passes through `redact`, which masks the values the client was told are secret in every form
a URL, a form or a JSON body writes them (raw, percent- and form-encoded, JSON-escaped), and does so before any
text is cut. Secrets also stay on the host they were meant for: a redirect to another host drops secret headers
and query parameters (requests itself strips only Authorization), and the client's repr masks them. A URL is
stored only through `strip_secrets`. A request that cannot even be made (a malformed URL or redirect) is a
WebError like any other failure, so it fails its item, never the caller's loop.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import requests

from femo_pipeline.numerals import whole_number

USER_AGENT = "femo-pipeline/0.1 (+https://github.com/; research pipeline; polite client)"
RETRY_STATUSES = {429, 500, 502, 503, 504}
# headers that carry credentials; dropped on a redirect to another host (besides any header holding a secret value)
SECRET_HEADERS = ("Authorization", "Proxy-Authorization", "X-RapidAPI-Key", "X-Api-Key", "Api-Key")
SECRET_PARAMS = ("key", "api_key", "apikey", "access_token", "token")


class WebError(RuntimeError):
    """A request failed for good (after retries where that made sense); the message is safe to log."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


ERROR_BODY_CHARS = 200  # of an error page, kept in the message (after masking)


@functools.lru_cache(maxsize=64)
def secret_forms(secret: str) -> tuple[str, ...]:
    """Every way the secret may be written in a URL, a form or a JSON body, longest first: as it is, percent-encoded
    (with or without '/' kept, hex in either case), form-encoded (space as '+'), JSON-escaped."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, safe="/"),
             json.dumps(secret)[1:-1], json.dumps(secret)[1:-1].replace("/", "\\/")}
    forms |= {_lower_hex(f) for f in forms}
    return tuple(sorted(forms, key=len, reverse=True))


def _lower_hex(text: str) -> str:
    parts = text.split("%")
    return parts[0] + "".join("%" + p[:2].lower() + p[2:] for p in parts[1:])


def redact(text: str, secrets: Iterable[str]) -> str:
    """The text with every form of every secret (secret_forms) replaced by ***. Mask first, cut afterwards: a
    secret cut in half is no longer found."""
    for secret in secrets:
        if secret:
            for form in secret_forms(secret):
                text = text.replace(form, "***")
    return text


def strip_secrets(url: str, secrets: Iterable[str]) -> str:
    """The URL as it may be stored: every form of a secret masked first (a raw '&' in a key would split it across
    parameters), then without user and password and without the query parameters that are named like a key
    (SECRET_PARAMS) or held a secret."""
    url = redact(url, secrets)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                if k.lower() not in SECRET_PARAMS and "***" not in k and "***" not in v]
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(kept) if parts.query else ""))
    except ValueError:  # not a URL to take apart: masked as text
        return url


MAX_URL = 2048  # characters; longer URLs are rejected (browsers and CDNs refuse them too)


def url_problem(value) -> str | None:
    """What keeps `value` from being an http(s) URL with a host and a valid port ("is not an http(s) URL with a
    host", ...), or None when it is one."""
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a URL"
    if len(value) > MAX_URL:
        return f"is {len(value)} characters long (limit {MAX_URL})"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port past 65535 or not a number
    except ValueError as exc:
        return f"is malformed: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL with a host"
    return None


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a configured URL carries (its user's password, the values of key-like query parameters), for a
    client's `secrets`, so that messages about that URL mask them."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""] + [v for k, v in parse_qsl(parts.query, keep_blank_values=True)
                                          if k.lower() in SECRET_PARAMS]
    except ValueError:
        return ()
    return tuple(v for v in found if len(v) >= 4)  # a value too short to be a secret would mask ordinary text


class _RedactingFilter(logging.Filter):
    """Masks registered secrets in log records of the HTTP libraries (urllib3 logs full URLs at DEBUG level,
    and Pixabay wants its key in the query string)."""

    secrets: frozenset[str] = frozenset()  # replaced whole under _SECRETS_LOCK, never changed in place, so a
    # thread masking a record iterates a set no other thread is changing
    _SECRETS_LOCK = threading.Lock()

    def add(self, secrets) -> None:
        with self._SECRETS_LOCK:
            type(self).secrets = self.secrets | {s for s in secrets if s}

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets  # one snapshot for this record
        if secrets:
            message = record.getMessage()
            masked = redact(message, secrets)
            if masked != message:
                record.msg, record.args = masked, ()
        return True


_FILTER = _RedactingFilter()

# A logger's filter sees only the records made at that logger, and urllib3 logs from many modules (e.g.
# urllib3.connection's "Failed to parse headers (url=...)"): every record of the HTTP libraries is therefore
# masked as it is made, its traceback text included, whichever logger made it (no filter per logger needed).
_LIBRARIES = ("urllib3", "requests")
_make_record = logging.getLogRecordFactory()


def _masked_record(*args, **kwargs) -> logging.LogRecord:
    record = _make_record(*args, **kwargs)
    secrets = _FILTER.secrets  # one snapshot for this record
    if secrets and str(record.name or "").split(".", 1)[0] in _LIBRARIES:
        _FILTER.filter(record)
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            masked = redact(text, secrets)
            if masked != text:  # only a traceback that names a secret loses its exception object
                record.exc_text, record.exc_info = masked, None
    return record


if not getattr(_make_record, "femo_masks", False):  # once, however often this module is reloaded
    _masked_record.femo_masks = True
    logging.setLogRecordFactory(_masked_record)


class SecretKeepingSession(requests.Session):
    """A requests Session that keeps secrets on their host: on a redirect to another host (or to plain http
    from https) it drops the secret headers and query parameters, not only Authorization as requests does."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def _is_secret(self, value: str) -> bool:
        return any(secret in value for secret in self.secrets)

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if not self.should_strip_auth(response.request.url, prepared_request.url):
            return
        secret_names = {h.lower() for h in SECRET_HEADERS}
        for name in list(prepared_request.headers):
            if name.lower() in secret_names or self._is_secret(str(prepared_request.headers[name])):
                del prepared_request.headers[name]
        parts = urlsplit(prepared_request.url)
        if parts.query:
            kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                    if k.lower() not in SECRET_PARAMS and not self._is_secret(v)]
            prepared_request.url = urlunsplit(parts._replace(query=urlencode(kept)))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if (seconds := whole_number(value)) is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError, OSError, IndexError):  # malformed, or a date no clock can hold
        return None
    return max(0.0, when - (now if now is not None else time.time()))


def content_length(header: str | None) -> int | None:
    """The byte count a Content-Length header announces (None when there is none); a header sent twice with one
    value reads "123, 123" and is that count. ValueError when it is not one byte count."""
    if header is None:
        return None
    counts = {whole_number(part.strip()) for part in header.split(",")}
    if None in counts or len(counts) != 1:
        raise ValueError(f"Content-Length {header[:40]!r} is not a byte count")
    return counts.pop()


MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a search answer or an article page; images have their own limit


class DownloadDeadline(RuntimeError):
    """A download ran past its total deadline."""


def read_body(response: requests.Response, max_bytes: int, deadline_at: float, deadline: float) -> tuple[bytes, int]:
    """The decoded body of a streamed response (at most max_bytes + 1 bytes) and the bytes that came over the wire.

    Reads one socket read at a time, so a server that drips bytes is stopped at the total deadline (give or
    take one read timeout) instead of holding the caller for as long as it keeps sending."""
    raw = response.raw
    chunks, size = [], 0
    while size <= max_bytes:
        if time.monotonic() > deadline_at:
            raise DownloadDeadline(f"deadline passed: not complete after {deadline:g} s ({raw.tell()} bytes received)")
        chunk = raw.read1(65536, decode_content=True)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), raw.tell()


@dataclass
class PoliteClient:
    """GET with pacing and retries. `secrets` are masked in messages, logs and repr, and never follow a redirect
    to another host."""

    timeout: float = 20.0
    max_retries: int = 4
    backoff: float = 1.0  # first wait; doubles each retry, with jitter
    max_wait: float = 60.0  # cap on any single wait, Retry-After included
    min_interval: float = 1.0  # at least this long between the starts of two requests
    user_agent: str = USER_AGENT
    secrets: tuple[str, ...] = ()
    download_deadline: float = 60.0  # total seconds one download may take, however slowly the bytes drip in
    answer_deadline: float = 300.0  # total seconds one fetch() of a search answer or page may take, waits included
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session | None = None  # default: a SecretKeepingSession for `secrets`
    waits: list[float] = field(default_factory=list)  # every wait taken, for logs and tests

    def __post_init__(self) -> None:
        _FILTER.add(self.secrets)
        if self.session is None:
            self.session = SecretKeepingSession(self.secrets)
        self._lock = threading.Lock()
        self._last_start = 0.0

    def redact(self, text: str) -> str:
        """The text with this client's secrets masked (see redact)."""
        return redact(text, self.secrets)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "secrets":
                value = tuple("***" for _ in value)
            elif f.name in ("session", "sleep"):
                value = type(value).__name__
            shown.append(f"{f.name}={value!r}")
        return redact(f"{type(self).__name__}({', '.join(shown)})", self.secrets)

    __str__ = __repr__

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

    def get(self, url: str, params: dict | None = None, headers: dict | None = None, stream: bool = False,
            deadline_at: float | None = None) -> requests.Response:
        """GET with retries. Returns a 2xx response; raises WebError (message redacted) otherwise.

        deadline_at (a time.monotonic() value) bounds every attempt and wait: no request starts, and no read
        waits, past it."""
        all_headers = {"User-Agent": self.user_agent, **(headers or {})}
        # the full URL (query included) for messages, with every secret masked
        try:
            safe_url = redact(requests.Request("GET", url, params=params).prepare().url or url, self.secrets)
        except (requests.RequestException, ValueError) as exc:
            raise WebError(f"GET {redact(str(url), self.secrets)} cannot be requested: {self._why(exc)}") from None
        last = "no attempt made"

        def past_deadline(extra: float = 0.0) -> bool:
            return deadline_at is not None and time.monotonic() + extra >= deadline_at

        for attempt in range(self.max_retries + 1):
            self._pace()
            if past_deadline():
                raise WebError(f"GET {safe_url} failed: deadline passed after {attempt} attempts (last: {last})")
            timeout = self.timeout if deadline_at is None else min(self.timeout, deadline_at - time.monotonic())
            try:
                response = self.session.get(url, params=params, headers=all_headers, timeout=timeout, stream=stream)
            except requests.Timeout:
                last = f"timed out after {timeout:g} s"
            except requests.ConnectionError as exc:
                last = f"connection failed ({type(exc).__name__})"
            except (requests.RequestException, ValueError) as exc:
                # a malformed URL or redirect (a port past 65535, no scheme, too many redirects): no retry helps
                raise WebError(f"GET {safe_url} failed: {self._why(exc)}") from None
            else:
                if response.status_code < 400:
                    return response
                try:  # an error page: keep its start for the message, and give the connection back
                    body = self._error_text(response)
                except (requests.RequestException, ValueError):
                    body = ""
                finally:
                    response.close()
                last = f"HTTP {response.status_code}" + (f": {body}" if body else "")
                if response.status_code not in RETRY_STATUSES:
                    raise WebError(f"GET {safe_url} failed: {last}", response.status_code)
                if attempt < self.max_retries:
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    if wait is not None:
                        if past_deadline(min(wait, self.max_wait)):
                            raise WebError(f"GET {safe_url} failed: deadline passed after {attempt + 1} attempts "
                                           f"(last: {last})", response.status_code)
                        self._wait(wait)
                        continue
            if attempt < self.max_retries:
                wait = self.backoff * 2**attempt * (1 + random.random() * 0.25)
                if past_deadline(min(wait, self.max_wait)):
                    raise WebError(f"GET {safe_url} failed: deadline passed after {attempt + 1} attempts (last: {last})")
                self._wait(wait)
        raise WebError(f"GET {safe_url} failed after {self.max_retries + 1} attempts: {last}")

    def fetch(self, url: str, params: dict | None = None, headers: dict | None = None,
              max_bytes: int = MAX_ANSWER_BYTES, deadline: float | None = None) -> tuple[bytes, requests.Response]:
        """GET a whole answer, bounded: (body, the closed response), or WebError (message redacted) when it fails,
        runs past `deadline` seconds in all (default: answer_deadline; retries and waits included) or is larger
        than max_bytes. A server that drips its answer or sends without end cannot hold the caller."""
        deadline = self.answer_deadline if deadline is None else deadline
        deadline_at = time.monotonic() + deadline
        for attempt in range(self.max_retries + 1):
            response = self.get(url, params=params, headers=headers, stream=True, deadline_at=deadline_at)
            shown = redact(str(response.url or url), self.secrets)
            try:
                data, wire = read_body(response, max_bytes, deadline_at, deadline)
                try:
                    declared = content_length(response.headers.get("Content-Length"))
                except ValueError:  # no count to hold the answer to: taken as it came
                    declared = None
                broke = (f"{wire} of {declared} bytes" if declared is not None and declared != wire
                         and len(data) <= max_bytes else None)
            except DownloadDeadline as exc:
                raise WebError(f"GET {shown} failed: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - a transfer breaks off as many exception types
                broke = type(exc).__name__
            finally:
                response.close()
            if broke is None:
                break
            # a body cut short is retried like a failed request, within the same deadline
            wait = self.backoff * 2**attempt
            if attempt == self.max_retries or time.monotonic() + min(wait, self.max_wait) >= deadline_at:
                raise WebError(f"GET {shown} failed: transfer broke off ({broke}) after {attempt + 1} attempts")
            self._wait(wait)
        if len(data) > max_bytes:
            raise WebError(f"GET {shown} failed: the answer is larger than {max_bytes} bytes")
        return data, response

    def fetch_text(self, url: str, **kwargs) -> str:
        """fetch() decoded with the answer's declared charset (UTF-8 when it declares none it can name); bytes
        that do not decode become U+FFFD."""
        data, response = self.fetch(url, **kwargs)
        try:
            return data.decode(response.encoding or "utf-8", errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")

    def _why(self, exc: BaseException) -> str:
        """An exception as a short message, masked before it is cut."""
        return f"{type(exc).__name__}: " + " ".join(self.redact(str(exc)).split())[:ERROR_BODY_CHARS]

    def _error_text(self, response: requests.Response, limit: int = 65536) -> str:
        """The start of an error page (at most `limit` bytes read), masked, then cut to ERROR_BODY_CHARS."""
        data = b""
        for chunk in response.iter_content(8192):
            data += chunk
            if len(data) >= limit:
                break
        text = data[:limit].decode(response.encoding or "utf-8", "replace")
        return " ".join(self.redact(text).split())[:ERROR_BODY_CHARS]
