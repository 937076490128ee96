"""Connections to external sources: each checks the destination first
(``egress_check``), then yields the source's content as byte chunks.

A pull is bounded in time whatever the source does: it ends with
``PullTooSlow`` once it has taken ``STAGEGATE_PULL_READ_TIMEOUT`` seconds in
all (a server that sends one byte a second never trips a per-read timeout),
and a read that gets no byte for ``STAGEGATE_PULL_STALL_TIMEOUT`` seconds
fails as a timeout (retried, like a connection that could not be made).
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from datasets.egress import EgressRefused, egress_check, host_is_allowlisted
from datasets.storage import CHUNK_BYTES

# Seconds to wait for a source's server to accept and answer the handshake:
# a server that hangs gives its worker slot back after this.
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT_MS = 15 * 60 * 1000


class SourceError(Exception):
    """The source answered, but not with data we can use (final, no retry)."""


class PullTooSlow(SourceError):
    """The source sent its data too slowly: the pull ran past its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The source sent its data too slowly: the pull was stopped after {seconds:g} s "
            "(STAGEGATE_PULL_READ_TIMEOUT)."
        )


def _statement_timeout_ms() -> int:
    """The server stops the query at the pull's deadline (or 15 minutes)."""
    return max(1, min(STATEMENT_TIMEOUT_MS, int(_read_timeout() * 1000)))


def _read_timeout() -> float:
    from django.conf import settings

    return float(settings.STAGEGATE_PULL_READ_TIMEOUT)


def _stall_timeout() -> float:
    from django.conf import settings

    return float(settings.STAGEGATE_PULL_STALL_TIMEOUT)


def within_deadline(chunks: Iterator[bytes], *, seconds: float | None = None) -> Iterator[bytes]:
    """``chunks`` until the pull has taken ``seconds`` in all, then
    ``PullTooSlow``. Checked between chunks: a reader that blocks longer
    is bounded by its own timeout (the stall timeout, a statement timeout)."""
    seconds = _read_timeout() if seconds is None else seconds
    deadline = time.monotonic() + seconds
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise PullTooSlow(seconds)
        yield chunk


class ConnectFailed(ConnectionError):
    """No connection to the source's server (transient, retried).

    The same words whether the port was closed, filtered, or open to something
    that is not the expected server, so that a stored error cannot be used to
    tell open ports from closed ones.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"Could not connect to {host}:{port}.")


# --- PostgreSQL ---------------------------------------------------------------


@contextmanager
def _postgres(config: dict[str, Any], secrets: dict[str, str]) -> Iterator[Any]:
    import psycopg

    host = config["host"]
    port = int(config.get("port") or 5432)
    address = egress_check(host, port)
    try:
        connection = psycopg.connect(
            host=host,
            hostaddr=address,
            port=port,
            dbname=config["database"],
            user=config["user"],
            password=secrets.get("password") or None,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="stagegate",
            options=(
                f"-c default_transaction_read_only=on -c statement_timeout={_statement_timeout_ms()}"
            ),
        )
    except psycopg.OperationalError as exc:
        if "FATAL:" in str(exc):
            raise  # a PostgreSQL server answered (wrong password, no such database)
        raise ConnectFailed(host, port) from None
    try:
        yield connection
    finally:
        connection.close()


def postgres_test(config: dict[str, Any], secrets: dict[str, str]) -> str:
    with _postgres(config, secrets) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
    return f"Connected to PostgreSQL {version}."


def postgres_chunks(config: dict[str, Any], secrets: dict[str, str]) -> Iterator[bytes]:
    """The query's result as CSV with a header, streamed by COPY."""
    import psycopg
    from psycopg import sql

    query = config["query"].strip().rstrip(";")
    with _postgres(config, secrets) as connection:
        try:
            with connection.cursor() as cursor:
                statement = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(
                    sql.SQL(query)  # type: ignore[arg-type]
                )
                with cursor.copy(statement) as copy:
                    for chunk in copy:
                        yield bytes(chunk)
        except psycopg.errors.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            raise SourceError(f"The query failed: {exc.diag.message_primary or exc}") from exc


# --- Azure Blob / ADLS ----------------------------------------------------------


def _azure_endpoint(config: dict[str, Any]) -> tuple[str, str, int]:
    endpoint = (config.get("endpoint") or "").rstrip("/")
    if not endpoint:
        endpoint = f"https://{config['account']}.blob.core.windows.net"
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if (parts.scheme != "https" or port != 443) and not host_is_allowlisted(host, port):
        raise EgressRefused("Azure endpoints must be https on port 443.")
    return endpoint, host, port


def _azure_fs(config: dict[str, Any], secrets: dict[str, str]) -> Any:
    import fsspec

    endpoint, host, port = _azure_endpoint(config)
    egress_check(host, port)
    parts = [
        f"DefaultEndpointsProtocol={urlsplit(endpoint).scheme}",
        f"AccountName={config['account']}",
        f"BlobEndpoint={endpoint}",
    ]
    if secrets.get("account_key"):
        parts.append(f"AccountKey={secrets['account_key']}")
    elif secrets.get("sas_token"):
        parts.append(f"SharedAccessSignature={secrets['sas_token'].lstrip('?')}")
    return fsspec.filesystem(
        "abfs",
        connection_string=";".join(parts) + ";",
        skip_instance_cache=True,
        connection_timeout=CONNECT_TIMEOUT,
    )


@contextmanager
def _azure_connect_errors(config: dict[str, Any]) -> Iterator[None]:
    from azure.core.exceptions import ServiceRequestError

    try:
        yield
    except ServiceRequestError:
        _, host, port = _azure_endpoint(config)
        raise ConnectFailed(host, port) from None


def azure_test(config: dict[str, Any], secrets: dict[str, str]) -> str:
    fs = _azure_fs(config, secrets)
    path = f"{config['container']}/{config['path']}"
    try:
        with _azure_connect_errors(config):
            info = fs.info(path)
    except FileNotFoundError as exc:
        raise SourceError(f"No blob at {path}.") from exc
    return f"Found {path} ({info.get('size', 0):,} bytes)."


def azure_chunks(config: dict[str, Any], secrets: dict[str, str]) -> Iterator[bytes]:
    fs = _azure_fs(config, secrets)
    path = f"{config['container']}/{config['path']}"
    try:
        with _azure_connect_errors(config):
            handle = fs.open(path, "rb", block_size=CHUNK_BYTES)
    except FileNotFoundError as exc:
        raise SourceError(f"No blob at {path}.") from exc
    with handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


# --- HTTPS ----------------------------------------------------------------------


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to an address checked beforehand, verifying the host's certificate."""

    def __init__(self, host: str, address: str, port: int) -> None:
        from django.conf import settings

        context = ssl.create_default_context(cafile=settings.DATA_HTTPS_CA_FILE or None)
        super().__init__(host, port, timeout=CONNECT_TIMEOUT, context=context)
        self._address = address

    def connect(self) -> None:
        try:
            sock = socket.create_connection((self._address, self.port), self.timeout)
        except OSError:
            raise ConnectFailed(self.host, self.port) from None
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
        except ssl.SSLCertVerificationError:
            sock.close()
            raise  # a TLS server answered with a certificate we do not trust
        except OSError:
            sock.close()  # not TLS, or it hung: the same answer as a closed port
            raise ConnectFailed(self.host, self.port) from None


def _https_get(config: dict[str, Any], secrets: dict[str, str]) -> http.client.HTTPResponse:
    parts = urlsplit(config["url"])
    if parts.scheme != "https" or not parts.hostname:
        raise EgressRefused("Only https:// URLs are allowed.")
    port = parts.port or 443
    if port != 443 and not host_is_allowlisted(parts.hostname, port):
        raise EgressRefused("HTTPS sources must use port 443.")
    address = egress_check(parts.hostname, port)
    connection = _PinnedHTTPSConnection(parts.hostname, address, port)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    headers = {"User-Agent": "stagegate"}
    if config.get("user"):
        pair = f"{config['user']}:{secrets.get('password', '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    if response.status != 200:
        # Redirects are not followed: their target was not checked.
        connection.close()
        raise SourceError(f"The server answered {response.status} {response.reason}.")
    return response


def https_test(config: dict[str, Any], secrets: dict[str, str]) -> str:
    response = _https_get(config, secrets)
    response.close()
    return f"The server answered {response.status}."


def https_chunks(config: dict[str, Any], secrets: dict[str, str]) -> Iterator[bytes]:
    """The body, as it comes: each read returns what one receive brings and
    waits at most the stall timeout, or what is left of the pull's deadline."""
    total = _read_timeout()
    deadline = time.monotonic() + total
    stall = _stall_timeout()
    response = _https_get(config, secrets)
    with response:
        sock = response.fp.raw._sock if response.fp is not None else None  # type: ignore[attr-defined]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PullTooSlow(total)
            if sock is not None:
                sock.settimeout(min(stall, left))
            try:
                chunk = response.read1(CHUNK_BYTES)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise PullTooSlow(total) from None
                raise TimeoutError(f"The source sent nothing for {stall:g} s.") from None
            if not chunk:
                return
            yield chunk


def _bounded(puller: Any) -> Any:
    def pull(config: dict[str, Any], secrets: dict[str, str]) -> Iterator[bytes]:
        return within_deadline(puller(config, secrets))

    return pull


TESTERS = {"postgres": postgres_test, "azure_blob": azure_test, "https": https_test}
PULLERS = {
    "postgres": _bounded(postgres_chunks),
    "azure_blob": _bounded(azure_chunks),
    "https": _bounded(https_chunks),
}
