"""Request deadlines: Sanic's protocol with `request_timeout` and `response_timeout` enforced
as deadlines instead of idle timeouts.

Sanic resets both timers on every byte it receives, so a client that trickles one byte per
second holds a connection — and, mid-upload, a staging file — for ever (slowloris). With this
protocol:

- the request line and headers must arrive within `request_timeout` of their first byte
  (else 408 `request_timeout` and the connection closes);
- a handler must finish within `response_timeout` of the headers' arrival, body included:
  uploads stream inside their handler, so a body still arriving then is cut off with 408
  `request_timeout`, and a handler that is merely slow with 503 (Sanic's "Response Timeout").
  The handler is cancelled, so an upload drops its staging file.

Sending a response stays idle-timed (a slow but steady download of a large file must not be
cut), and so does the keep-alive wait between requests. Deadlines are checked on Sanic's
timeout tick (half the smallest of the three timeouts), so they hold to within that tick.
"""

from __future__ import annotations

import sys
from time import monotonic, perf_counter

from sanic.exceptions import RequestTimeout, ServiceUnavailable
from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol


class DeadlineHttp(Http):
    """Http/1.1 that remembers when the current request's headers began to arrive."""

    __slots__ = ("headers_started",)

    def init_for_request(self) -> None:
        super().init_for_request()
        self.headers_started: float | None = None

    async def http1_request_header(self) -> None:
        # Called once the first bytes of a request are in (after the keep-alive wait).
        self.headers_started = monotonic()
        await super().http1_request_header()


class DeadlineHttpProtocol(HttpProtocol):
    HTTP_CLASS = DeadlineHttp

    def check_timeouts(self) -> None:
        if not self._enforce_deadlines():
            super().check_timeouts()

    def _enforce_deadlines(self) -> bool:
        """Cancel the connection's task when a deadline has passed; True if it did."""
        http = getattr(self, "_http", None)
        if not self._task or http is None:
            return False
        exception: Exception | None = None
        if http.stage is Stage.REQUEST:
            started = getattr(http, "headers_started", None)
            if started is not None and monotonic() - started > self.request_timeout:
                exception = RequestTimeout(
                    f"The request headers did not arrive within {self.request_timeout:g}s."
                )
        elif (http.stage is Stage.HANDLER and not http.upgrade_websocket and http.perft0
              and perf_counter() - http.perft0 > self.response_timeout):
            if http.request_body:  # the body is still arriving
                exception = RequestTimeout(
                    f"The request body did not arrive within {self.response_timeout:g}s."
                )
            else:
                exception = ServiceUnavailable("Response Timeout")
        if exception is None:
            return False
        http.exception = exception
        if sys.version_info < (3, 14):
            self._task.cancel("request deadline passed")
        else:
            self._task.cancel()
        return True
