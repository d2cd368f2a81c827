"""The server's buffered log handler: lines leave in batches, in order, none lost; a warning
goes out at once with everything before it."""

import io
import logging
import threading

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
