"""A minimal HTTP/1.1 client for the launcher's proxy: pooled keep-alive connections to one backend.

The proxy forwards every request of the public port to `bentoml serve` on loopback. A general
client (httpx) costs more per request than scoring one row does, so the hop uses raw asyncio
streams instead: the request is written as bytes on an idle kept-alive connection (a new one
when none is idle), and the response is read by `Content-Length`, chunked, or to the end of a
closing connection. What the backend sends is what the proxy answers: status, headers (less
the hop-by-hop ones) and body as they are (no decoding).

Contract:
- `BackendConnectError`: no connection could be opened (the backend is not listening): nothing
  was sent, so the proxy may send the request elsewhere;
- `BackendError`: the backend failed after the request went out (reset, malformed, timeout);
- a kept-alive connection the backend closed while idle is dropped before anything is sent
  on it (its EOF has arrived) and the request goes on another one; one that fails after the
  request went out, before any byte of the answer (the close raced the send), is retried once on
  a fresh connection only for an idempotent method: a POST the backend may have read and
  processed is never sent twice (`BackendError` instead);
- interim (1xx) answers are skipped: the caller gets the final one, and the connection stays in step.
"""

from __future__ import annotations

import asyncio
from collections import deque

NO_BODY_STATUSES = frozenset({204, 304})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})  # RFC 9110 9.2.2: safe to resend


class BackendError(Exception):
    """The backend did not answer properly (after the request was sent)."""


class BackendConnectError(BackendError):
    """No connection to the backend (nothing was sent)."""


class _Stale(Exception):
    """A pooled connection was closed by the backend before answering: retry on a new one."""


class _Unsent(_Stale):
    """The connection failed while the request was being written: the backend cannot have processed it."""


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes):
        self.status, self.headers, self.body = status, headers, body  # header names lowercase

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


class BackendPool:
    """Keep-alive connections to `host:port`; at most `max_idle` kept between requests."""

    def __init__(self, host: str, port: int, *, max_idle: int = 64, timeout_s: float = 60.0):
        self.host, self.port = host, port
        self.max_idle = max_idle
        self.timeout_s = timeout_s
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self._host_header = f"{host}:{port}".encode()

    async def request(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
        """Send one request (headers without Host/Content-Length/hop-by-hop); the backend's answer."""
        head = self._head(method, target, headers, len(body))
        async with asyncio.timeout(self.timeout_s):
            while self._idle:
                conn = self._idle.pop()
                reader, writer = conn
                if writer.is_closing() or reader.at_eof() or reader.exception() is not None:
                    writer.close()  # closed (or reset) by the backend while idle: nothing was sent on it
                    continue
                try:
                    return await self._exchange(conn, head, body, method)
                except _Stale as exc:
                    if method not in IDEMPOTENT and not isinstance(exc, _Unsent):  # it may have been read and processed: never twice
                        raise BackendError("the backend closed a kept-alive connection without answering") from None
                    break  # the close raced the send: once more, on a fresh connection
            try:
                conn = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                raise BackendConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
            try:
                return await self._exchange(conn, head, body, method)
            except _Stale:
                raise BackendError("the backend closed the connection without answering") from None

    def _head(self, method: str, target: bytes, headers, length: int) -> bytes:
        lines = [method.encode() + b" " + target + b" HTTP/1.1", b"host: " + self._host_header,
                 b"content-length: " + str(length).encode()]
        lines += [k + b": " + v for k, v in headers]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _exchange(self, conn, head: bytes, body: bytes, method: str) -> Response:
        reader, writer = conn
        answered = False  # any byte of the answer read: from then on a failure is the backend's
        try:
            try:
                writer.write(head + body)
                await writer.drain()
            except OSError:
                raise _Unsent from None
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial and not answered:
                        raise _Stale from None
                    raise BackendError("the backend closed the connection mid-answer") from None
                except asyncio.LimitOverrunError:
                    raise BackendError("the backend's answer headers are too large") from None
                answered = True
                status, headers, keep = _parse_head(raw)
                if status == 101:
                    raise BackendError("the backend switched protocols (upgrades are not proxied)")
                if not 100 <= status < 200:
                    break  # 1xx (100 Continue, 103 Early Hints): interim, the final answer follows
            if method == "HEAD" or status in NO_BODY_STATUSES:
                data = b""
            else:
                data, keep = await _read_body(reader, headers, keep)
        except (_Stale, BackendError):
            writer.close()
            raise
        except OSError as exc:  # reset, broken pipe
            writer.close()
            if not answered:
                raise _Stale from None
            raise BackendError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:  # cancelled (client gone, timeout): the connection's state is unknown
            writer.close()
            raise
        if keep and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            writer.close()
        return Response(status, headers, data)

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


def _parse_head(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bool]:
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise BackendError(f"malformed status line from the backend: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise BackendError(f"malformed header line from the backend: {line[:80]!r}")
        headers.append((name.strip().lower(), value.strip()))
    connection = next((v.lower() for k, v in headers if k == b"connection"), b"")
    keep = b"close" not in connection if parts[0] == b"HTTP/1.1" else b"keep-alive" in connection
    return int(parts[1]), headers, keep


async def _read_body(reader: asyncio.StreamReader, headers, keep: bool) -> tuple[bytes, bool]:
    """(body, whether the connection can be reused)."""
    coding = next((v.lower() for k, v in headers if k == b"transfer-encoding"), None)
    try:
        if coding is not None and b"chunked" in coding:
            chunks = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    return b"".join(chunks), keep
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = next((v for k, v in headers if k == b"content-length"), None)
        if length is not None:
            if not length.isdigit():
                raise BackendError(f"bad Content-Length from the backend: {length[:40]!r}")
            return await reader.readexactly(int(length)), keep
        return await reader.read(-1), False  # delimited by the end of the connection
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        raise BackendError(f"the backend's answer was cut short: {type(exc).__name__}") from None
