"""How long-running admin work (check, backup, restore) reports progress without knowing about
terminals: the CLI passes an object with these three methods (a click progress bar on stderr)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total: int, label: str) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """Reports nothing."""

    def start(self, total: int, label: str) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass
