"""A TCP relay between the S3 client and SeaweedFS that can break the first connection.

Real sockets, real server: the relay only forwards bytes, and on the first connection either
cuts it (`cut_after` bytes from the server) or stops forwarding while holding it open
(`stall_after`), as a store restarting or a network dropping out would, or changes one byte the
client sends (`flip_at`: that byte XOR 0xFF), as a faulty NIC, proxy or memory would. Later
connections pass.
"""

from __future__ import annotations

import socket
import threading


class FaultyRelay:
    def __init__(self, upstream_port: int, *, cut_after: int | None = None,
                 stall_after: int | None = None, flip_at: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.flip_at = flip_at
        self.cut_after = cut_after
        self.stall_after = stall_after
        self.connections = 0
        self.faulted = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            first = self.connections == 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, None,
                                                      self.flip_at if first else None),
                             daemon=True).start()
            limit = (self.cut_after if self.cut_after is not None else self.stall_after) \
                if first else None
            threading.Thread(target=self._pump, args=(upstream, client, limit), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None,
              flip_at: int | None = None) -> None:
        sent = 0
        try:
            while True:
                want = 65536 if limit is None else min(65536, limit - sent)
                if want <= 0:
                    self.faulted.set()
                    if self.cut_after is not None:
                        for sock in (src, dst):  # shutdown, not just close: the peer
                            _shutdown(sock)      # thread may be blocked on the descriptor
                    return  # stall: stop forwarding, leave both sockets open
                data = src.recv(want)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if flip_at is not None and sent <= flip_at < sent + len(data):
                    changed = bytearray(data)
                    changed[flip_at - sent] ^= 0xFF
                    data = bytes(changed)
                    self.faulted.set()
                dst.sendall(data)
                sent += len(data)
        except OSError:
            return

    def close(self) -> None:
        self._closed = True
        _shutdown(self._listener)
        for s in self._sockets:
            _shutdown(s)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
