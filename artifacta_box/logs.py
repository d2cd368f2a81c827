"""Logging: human text lines by default, JSON lines with `[logging] format = "json"`."""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from artifacta_box.config import Settings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _json_ts(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": _json_ts(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class _TextLines:
    """TEXT_FORMAT for a deferred INFO line, the same text logging.Formatter makes (local
    time, `,mmm` milliseconds), its date and time rendered once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def __call__(self, created: float, name: str, msg: str, fields: dict[str, Any]) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        msecs = int((created - second) * 1000)
        return f"{self._stamp},{msecs:03d} INFO {name}: {msg}"


def _json_line(created: float, name: str, msg: str, fields: dict[str, Any]) -> str:
    """JsonFormatter's line for a deferred INFO record with `fields` as its extra."""
    return json.dumps({"ts": _json_ts(created), "level": "info", "logger": name, "msg": msg,
                       **fields}, default=str)


# A line whose formatting waits for the flush: (created, logger name, message format, its
# arguments, the record's extra fields).
Deferred = tuple[float, str, str, tuple[Any, ...], dict[str, Any]]
LineFormat = Callable[[float, str, str, dict[str, Any]], str]


class BufferedStreamHandler(logging.Handler):
    """Log lines written in batches: one write for every line that arrived within FLUSH_SECONDS
    (or FLUSH_LINES lines), at once for a WARNING or worse, and at exit. The server's access log
    (a line per request) wrote and flushed stderr per line: one syscall per request, which cost
    28 % of small-download throughput. A kill -9 loses at most FLUSH_SECONDS of info lines.

    `defer` takes a line that is formatted when its batch is written, by `line_format` (set
    by `configure` to the handler's own formatter's output): the access log's line per request
    then costs the request a tuple, and its formatting happens in bulk on the flusher thread,
    in order with every other line."""

    FLUSH_SECONDS = 0.2
    FLUSH_LINES = 256
    MAX_PENDING = 4 * FLUSH_LINES  # beyond this an emitter writes the batch itself (bounded)

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.line_format: LineFormat | None = None
        self._pending: list[str | Deferred] = []
        self._closed = False
        # The queue's own lock, never logging's handler lock: logging holds that one around
        # emit and around flush at shutdown, and the flusher thread never takes it, so
        # whoever holds it may wait for _writing. _writing is taken before _wake, never
        # after: one batch at a time leaves, in order, while emitters only ever wait for the
        # short swap under _wake.
        self._wake = threading.Condition(threading.Lock())
        self._writing = threading.Lock()
        self._flusher = threading.Thread(target=self._flush_loop, name="log-flush", daemon=True)
        self._flusher.start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)
            return
        self._add(line, urgent=record.levelno >= logging.WARNING)

    def defer(self, line: Deferred) -> None:
        """Queue an INFO line to be formatted by `line_format` when its batch is written."""
        self._add(line, urgent=False)

    def _add(self, line: str | Deferred, urgent: bool) -> None:
        with self._wake:
            self._pending.append(line)
            n = len(self._pending)
            if n == 1 or n == self.FLUSH_LINES:
                self._wake.notify()
            urgent = urgent or n >= self.MAX_PENDING
        if urgent:
            self.flush()

    def flush(self) -> None:
        """Write every pending line; when it returns, every line queued before is written."""
        with self._writing:
            with self._wake:
                batch, self._pending = self._pending, []
            if batch:
                self._write(batch)

    def _write(self, batch: list[str | Deferred]) -> None:  # holds _writing
        fmt = self.line_format
        lines = []
        for line in batch:
            if not isinstance(line, str):
                created, name, msg, args, fields = line
                try:
                    line = fmt(created, name, msg % args, fields)  # type: ignore[misc]
                except Exception:  # noqa: BLE001 - a bad line must not cost the batch
                    line = f"unformattable log line {msg!r} {args!r}"
            lines.append(line)
        text = "\n".join(lines) + "\n"
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing better to do
            pass

    def close(self) -> None:
        self.flush()
        with self._wake:
            self._closed = True
            self._wake.notify()
        atexit.unregister(self.flush)
        super().close()

    def _flush_loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                if len(self._pending) < self.FLUSH_LINES:
                    self._wake.wait(self.FLUSH_SECONDS)  # let a batch collect
            self.flush()


def configure(settings: Settings, *, buffered: bool = False) -> None:
    """Log to stderr. `buffered` (the server): lines go out in batches (BufferedStreamHandler);
    admin commands write each line at once, in order with what they print."""
    handler: logging.Handler = (BufferedStreamHandler(sys.stderr) if buffered
                                else logging.StreamHandler(sys.stderr))
    # No caller lookup (a stack walk per record), thread or process names: no format here uses
    # them (JsonFormatter leaves every standard attribute out). The Logging HOWTO's
    # "Optimization" settings; they cut an access-log line's CPU by ~25 % (26.5-27 -> 18.5-21
    # us, same run, loaded 2-core machine).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    if isinstance(handler, BufferedStreamHandler):
        handler.line_format = _json_line if settings.log_format == "json" else _TextLines()
    global _deferring
    _deferring = handler if isinstance(handler, BufferedStreamHandler) else None
    root = logging.getLogger()
    for old in root.handlers:
        old.flush()
        if isinstance(old, BufferedStreamHandler):
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("sanic.root", "sanic.error", "sanic.server"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("sanic.access").disabled = True


# ------------------------------------------------------------------------------ access log

ACCESS_LOGGER = "artifacta_box.access"
ACCESS_FORMAT = "%s %s %s in=%d out=%d %.1fms route=%s tenant=%s rid=%s"
_access = logging.getLogger(ACCESS_LOGGER)
_root = logging.getLogger()
_deferring: BufferedStreamHandler | None = None  # the server's handler, once configured


def access_line(method: str, path: str, status: int, bytes_in: int, bytes_out: int,
                duration_ms: float, route: str, tenant: str | None, rid: str | None) -> None:
    """The access log's line for one request: ACCESS_FORMAT as its message, every field also
    as a record attribute (JSON lines carry them as keys).

    On the server (its BufferedStreamHandler the only handler, no filters anywhere) the line
    is queued unformatted and formatted with its batch, the same text the logging call below
    makes (tests/unit/test_logs.py); a logging call costs ~20 us per request (a LogRecord,
    the handler chain, the formatter, the timestamp rendered per line). Anything else (another
    handler, a filter, the access logger's level) goes through logging."""
    args = (method, path, status, bytes_in, bytes_out, duration_ms, route, tenant or "-",
            rid or "-")
    fields = {"method": method, "path": path, "route": route, "status": status,
              "bytes_in": bytes_in, "bytes_out": bytes_out,
              "duration_ms": round(duration_ms, 2), "tenant": tenant, "request_id": rid}
    handler = _deferring
    if (handler is not None and _access.isEnabledFor(logging.INFO) and not _access.handlers
            and not _access.filters and _access.propagate and not _root.filters
            and len(_root.handlers) == 1 and _root.handlers[0] is handler
            and not handler.filters and handler.level <= logging.INFO):
        handler.defer((time.time(), ACCESS_LOGGER, ACCESS_FORMAT, args, fields))
    else:
        _access.info(ACCESS_FORMAT, *args, extra=fields)
