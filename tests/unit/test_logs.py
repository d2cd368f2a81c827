"""The server's buffered log handler: lines leave in batches, in order, none lost; a warning
goes out at once with everything before it."""

import io
import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime

import pytest

from artifacta_box import logs
from artifacta_box.config import load_settings
from artifacta_box.logs import BufferedStreamHandler


class Recorder(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.wrote = threading.Event()

    def write(self, text: str) -> int:
        self.writes.append(text)
        self.wrote.set()
        return super().write(text)


def logger_with(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test-buffered-{id(handler)}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    return logger


def test_info_lines_leave_together_and_in_order():
    out = Recorder()
    handler = BufferedStreamHandler(out)
    try:
        log = logger_with(handler)
        for i in range(50):
            log.info("line %d", i)
        assert out.wrote.wait(10), "buffered lines were never written"
        handler.flush()
        assert out.getvalue().splitlines() == [f"line {i}" for i in range(50)]
        assert len(out.writes) < 50  # batched, not a write per line
    finally:
        handler.close()


def test_a_warning_is_written_at_once_with_the_lines_before_it():
    out = Recorder()
    handler = BufferedStreamHandler(out)
    handler.FLUSH_SECONDS = 3600  # the timer never fires during this test
    try:
        log = logger_with(handler)
        log.info("before")
        log.warning("trouble")
        assert out.getvalue() == "before\ntrouble\n"
        log.info("after")
    finally:
        handler.close()
    assert out.getvalue() == "before\ntrouble\nafter\n"  # close flushes what is left


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_deferred_access_line_is_the_line_logging_would_write(log_format, monkeypatch):
    # The server queues its access lines unformatted (logs.access_line); what leaves must be
    # exactly what the logging call writes, in order with the other lines.
    settings = load_settings(overrides={"log_format": log_format}, environ={})
    fields = ("GET", "/d/art_1?e=1&s=x", 200, 0, 4096, 1.2345, "/d/<artifact_id>", None,
              "req_abc")
    plain = Recorder()
    monkeypatch.setattr(sys, "stderr", plain)
    logs.configure(settings)  # admin commands: a StreamHandler, the line via logging
    logs.access_line(*fields)
    buffered = Recorder()
    monkeypatch.setattr(sys, "stderr", buffered)
    logs.configure(settings, buffered=True)
    handler = logging.getLogger().handlers[0]
    try:
        handler.FLUSH_SECONDS = 3600
        logging.getLogger("artifacta_box").info("before")
        logs.access_line(*fields)
        assert handler._pending[-1][2] == logs.ACCESS_FORMAT  # deferred, not formatted
        logging.getLogger("artifacta_box").warning("after")
    finally:
        logs.configure(settings)
    before, line, after = buffered.getvalue().splitlines()
    if log_format == "json":
        got, want = json.loads(line), json.loads(plain.getvalue())
        assert abs(parse_ts(got.pop("ts")) - parse_ts(want.pop("ts"))) < 5
        assert got == want and list(got) == list(want)
        assert json.loads(before)["msg"] == "before" and json.loads(after)["msg"] == "after"
    else:
        stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
        message = ("INFO artifacta_box.access: GET /d/art_1?e=1&s=x 200 in=0 out=4096 1.2ms "
                   "route=/d/<artifact_id> tenant=- rid=req_abc")
        assert re.fullmatch(stamp + re.escape(message), line)
        assert re.fullmatch(stamp + re.escape(message), plain.getvalue().rstrip("\n"))
        assert before.endswith("INFO artifacta_box: before")
        assert after.endswith("WARNING artifacta_box: after")


def parse_ts(ts: str) -> float:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def test_text_stamps_match_logging_across_seconds():
    lines = logs._TextLines()
    formatter = logging.Formatter(logs.TEXT_FORMAT)
    for created in (1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.0005, 1_700_000_059.5):
        record = logging.makeLogRecord({"name": "n", "levelname": "INFO", "msg": "m",
                                        "created": created,
                                        "msecs": int((created - int(created)) * 1000) + 0.0})
        assert lines(created, "n", "m", {}) == formatter.format(record)


def test_warnings_and_info_lines_from_many_threads_all_leave_without_a_deadlock():
    # Warnings flush from the emitting thread (logging holds the handler lock around emit),
    # the flusher writes its batches, a shutdown-style flush holds the handler lock: every
    # one takes the write lock, then the queue lock, so none waits forever.
    out = Recorder()
    handler = BufferedStreamHandler(out)
    handler.FLUSH_SECONDS = 0.001
    log = logger_with(handler)

    def emit(n):
        for i in range(300):
            (log.warning if i % 3 == 0 else log.info)("t%d-%d", n, i)

    def flush_like_shutdown():  # logging.shutdown flushes holding the handler's lock
        for _ in range(200):
            handler.acquire()
            try:
                handler.flush()
            finally:
                handler.release()

    threads = [threading.Thread(target=emit, args=(n,), daemon=True) for n in range(4)]
    threads.append(threading.Thread(target=flush_like_shutdown, daemon=True))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "an emitter is stuck"
        handler.flush()
        lines = out.getvalue().splitlines()
        assert sorted(lines) == sorted(f"t{n}-{i}" for n in range(4) for i in range(300))
        for n in range(4):  # each thread's lines in its order
            assert [x for x in lines if x.startswith(f"t{n}-")] == [f"t{n}-{i}" for i in range(300)]
    finally:
        handler.close()
