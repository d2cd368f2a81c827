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

`overdue` is the policy, a pure function of where the request is; the Sanic internals that
report that and cancel the request are in `http.sanic_seams` (`HttpProtocolWithDeadlines`).
"""

from __future__ import annotations

from sanic.exceptions import RequestTimeout, ServiceUnavailable

from artifacta_box.http.sanic_seams import HttpProtocolWithDeadlines, RequestProgress


def overdue(progress: RequestProgress, request_timeout: float,
            response_timeout: float) -> Exception | None:
    """The error that ends the request now, or None while it is within its deadlines."""
    if (progress.reading_headers and progress.headers_for is not None
            and progress.headers_for > request_timeout):
        return RequestTimeout(f"The request headers did not arrive within {request_timeout:g}s.")
    if (progress.in_handler and progress.handler_for is not None
            and progress.handler_for > response_timeout):
        if progress.body_arriving:
            return RequestTimeout(f"The request body did not arrive within {response_timeout:g}s.")
        return ServiceUnavailable("Response Timeout")
    return None


class DeadlineHttpProtocol(HttpProtocolWithDeadlines):
    """The protocol `serve` runs: Sanic's, with the deadlines above."""

    overdue = staticmethod(overdue)
