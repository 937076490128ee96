"""The tracking bridge's relay: one project's tracking server, and nothing else.

User code in a local sandbox has a network with loopback only. To let it log
to its project's tracking server, the local provider runs this relay outside
the sandbox, next to the workspace or job (``python cloud/relay.py``, standard
library and h11 only, nothing of the portal's apps). It listens on a unix
socket in the resource's run folder, which is bound into the sandbox, and
forwards HTTP requests to the portal:

- each request on a connection (keep-alive included) is parsed on its own by
  h11 and checked before anything is sent on: only ``GET``, ``HEAD``,
  ``POST``, ``PUT``, ``PATCH``, ``DELETE`` and ``OPTIONS`` in origin form
  (``/path?query``) whose path lies under ``--prefix`` (``/mlflow/<slug>/``),
  with no ``.`` or ``..`` segment, no backslash and no encoded slash,
  backslash or dot; anything else (another path, an absolute-form URI
  naming any host, ``CONNECT``, ``*``, malformed or ambiguous framing,
  headers above ``--max-header-bytes``) gets a 403 (400 or 431 for what
  cannot be parsed) and the connection is closed;
- an allowed request goes to the portal as a new request made from the parsed
  one: the same method, target, headers and body, except that ``Host`` names
  the portal, hop-by-hop headers are dropped and ``X-Forwarded-*`` /
  ``Forwarded`` headers from inside are not passed on. Nothing the client sent
  reaches the portal as raw bytes, so a second request hidden in the first's
  body or framing cannot get past the check;
- the answer comes back as the portal gave it.

Exit on SIGTERM (removing the socket). The pid file and log are the
launcher's (``cloud/_launch.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import encodings.idna  # noqa: F401 - needed for host names, imported before dropping to a uid
import http
import http.client
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator

import h11

ALLOWED_METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS"})
# Not passed on in either direction (RFC 9110 7.6.1), and what a client inside
# must not claim about itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)
NOT_FROM_INSIDE = re.compile(rb"^(x-forwarded-.*|forwarded|x-real-ip)$")
# An encoded slash, backslash or dot: a server behind could decode them into
# a path outside the prefix.
ENCODED_SEPARATOR = re.compile(r"%(2f|5c|2e)", re.IGNORECASE)
MAX_HEADER_BYTES = 64 * 1024
MAX_CONNECTIONS = 64
CHUNK = 64 * 1024
UPSTREAM_TIMEOUT = 300.0


def target_allowed(method: bytes, target: bytes, prefix: str) -> bool:
    """Whether a request line may pass: the one rule of the relay."""
    if method not in ALLOWED_METHODS:
        return False
    try:
        text = target.decode("ascii")
    except UnicodeDecodeError:
        return False
    if not text.startswith("/") or text.startswith("//"):
        return False  # absolute-form, authority-form, "*", or a scheme-relative path
    path = text.split("?", 1)[0].split("#", 1)[0]
    if "\\" in path or ENCODED_SEPARATOR.search(path):
        return False
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in path):
        return False
    segments = path.split("/")
    if any(s in (".", "..") for s in segments):
        return False
    return path.startswith(prefix)


class Upstream:
    """Where allowed requests go: the portal's base URL."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        if parts.path not in ("", "/"):
            raise ValueError("the portal's base URL has no path")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.netloc = parts.netloc.rsplit("@", 1)[-1]

    def connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=UPSTREAM_TIMEOUT)
        return http.client.HTTPConnection(self.host, self.port, timeout=UPSTREAM_TIMEOUT)


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Connection:
    """One client connection: requests in turn, each checked, then relayed."""

    def __init__(self, sock: socket.socket, upstream: Upstream, prefix: str) -> None:
        self.sock = sock
        self.upstream = upstream
        self.prefix = prefix
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.backend: http.client.HTTPConnection | None = None

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(CHUNK)
                self.h11.receive_data(data)
                continue
            return event

    def send(self, event: h11.Event) -> None:
        data = self.h11.send(event)
        if data:
            self.sock.sendall(data)

    def refuse(self, status: int, reason: str) -> None:
        body = f"{reason}\n".encode()
        with contextlib.suppress(h11.LocalProtocolError, OSError):
            self.send(
                h11.Response(
                    status_code=status,
                    reason=http.HTTPStatus(status).phrase.encode(),
                    headers=[
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("Content-Length", str(len(body))),
                        ("Connection", "close"),
                    ],
                )
            )
            self.send(h11.Data(data=body))
            self.send(h11.EndOfMessage())

    def serve(self) -> None:
        try:
            while True:
                try:
                    event = self.next_event()
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    if status == 400 and self.h11.their_state is h11.SEND_BODY:
                        return  # broken body framing: nothing sensible to answer
                    self.refuse(status, "Bad request")
                    return
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    return
                if not target_allowed(event.method, event.target, self.prefix):
                    self.refuse(
                        403, f"Only the project's tracking server ({self.prefix}) is reachable."
                    )
                    return
                try:
                    self.relay(event)
                except Refused as exc:
                    self.refuse(exc.status, exc.reason)
                    return
                if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                    return
                try:
                    self.h11.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except OSError:
            return
        finally:
            if self.backend is not None:
                self.backend.close()

    def body(self) -> Iterator[bytes]:
        if self.h11.they_are_waiting_for_100_continue:
            self.send(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            try:
                event = self.next_event()
            except h11.RemoteProtocolError as exc:
                raise Refused(400, "Bad request body") from exc
            if isinstance(event, h11.Data):
                if event.data:
                    yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise Refused(400, "Bad request body")

    def relay(self, request: h11.Request) -> None:
        headers: list[tuple[bytes, bytes]] = []
        length: bytes | None = None
        chunked = False
        for name, value in request.headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            if name in HOP_BY_HOP or NOT_FROM_INSIDE.match(name):
                continue
            headers.append((name, value))
        if self.backend is None:
            self.backend = self.upstream.connect()
        backend = self.backend
        try:
            backend.putrequest(
                request.method.decode("ascii"),
                request.target.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            backend.putheader("Host", self.upstream.netloc)
            for name, value in headers:
                backend.putheader(name.decode("latin-1"), value)
            if chunked:
                backend.putheader("Transfer-Encoding", "chunked")
            elif length is not None:
                backend.putheader("Content-Length", length)
            backend.endheaders()
            for data in self.body():
                if chunked:
                    backend.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                else:
                    backend.send(data)
            if chunked:
                backend.send(b"0\r\n\r\n")
            response = backend.getresponse()
        except (OSError, http.client.HTTPException, LookupError, UnicodeError) as exc:
            backend.close()
            self.backend = None
            raise Refused(502, "The tracking server cannot be reached.") from exc
        back = [
            (k, v)
            for k, v in response.getheaders()
            if k.lower().encode("latin-1") not in HOP_BY_HOP or k.lower() == "content-length"
        ]
        if response.will_close:
            back.append(("Connection", "close"))
        self.send(h11.Response(status_code=response.status, headers=back, reason=response.reason))
        while data := response.read(CHUNK):
            self.send(h11.Data(data=data))
        self.send(h11.EndOfMessage())
        if response.will_close:
            backend.close()
            self.backend = None


def listen(path: str) -> socket.socket:
    """Listen on the unix socket ``path`` (a stale socket there is replaced;
    anything else there is an error), connectable by the sandbox's user; the
    path appears only once the socket listens.

    Bound from inside its folder: a socket's path has at most 107 bytes."""
    folder, path = os.path.split(path)
    os.chdir(folder or ".")
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise SystemExit(f"{path} exists and is not a socket")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bound under another name and renamed once listening: whoever sees the
    # socket can connect to it (no "connection refused" in between).
    pending = f".{path}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pending)
    old = os.umask(0o111)  # rw for everyone: the folder decides who gets in
    try:
        sock.bind(pending)
    finally:
        os.umask(old)
    sock.listen(MAX_CONNECTIONS)
    os.rename(pending, path)
    return sock


def serve(listener: socket.socket, upstream: Upstream, prefix: str) -> None:
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def handle(conn: socket.socket) -> None:
        try:
            with conn:
                Connection(conn, upstream, prefix).serve()
        except Exception as exc:  # noqa: BLE001 - one connection's end, not the relay's
            print(f"connection ended by {type(exc).__name__}", file=sys.stderr, flush=True)
        finally:
            slots.release()

    while True:
        conn, _ = listener.accept()
        slots.acquire()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _stop_when(path: str, stop: Callable[[], None]) -> None:
    while not os.path.exists(path):
        time.sleep(1.0)
    stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="the unix socket to listen on")
    parser.add_argument("--upstream", required=True, help="the portal's base URL")
    parser.add_argument("--prefix", required=True, help="the one path prefix let through")
    parser.add_argument("--until-file", default="", help="exit once this file exists (a job's end)")
    parser.add_argument("--user", type=int, default=-1, help="the uid to run as once listening")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"/mlflow/[A-Za-z0-9_-]+/", args.prefix):
        parser.error(f"not a tracking server's prefix: {args.prefix!r}")
    upstream = Upstream(args.upstream)
    listener = listen(args.socket)
    name = os.path.basename(args.socket)
    if args.user >= 0:
        # Listening (and in the socket's folder, to remove it at the end):
        # nothing else needs the privileges it was started with.
        os.setgroups([])
        os.setgid(args.user)
        os.setuid(args.user)

    def stop(*_: object) -> None:
        with contextlib.suppress(OSError):
            os.unlink(name)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    if args.until_file:
        threading.Thread(target=_stop_when, args=(args.until_file, stop), daemon=True).start()
    print(f"relaying {args.prefix} on {args.socket} to {upstream.netloc}", flush=True)
    serve(listener, upstream, args.prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
