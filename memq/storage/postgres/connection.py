"""Connections to PostgreSQL: a pool, or one connection, opened from ``MEMQ_DATABASE_URL``.

Every connection is configured alike when it is made: autocommit (transactions are explicit,
as on SQLite), the schema to work in, and time limits so that nothing waits forever on a
server that stopped answering or a lock held by a daemon that hangs. Callers see
``StorageError`` (``DiskFullError`` when the server is out of space), never a ``psycopg``
error: wrap driver calls in ``storage_errors``.

Importing this module without the ``postgres`` extra raises ``SettingError`` naming
``pip install 'memq[postgres]'``: the driver is optional, and only a set
``MEMQ_DATABASE_URL`` leads here.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from memq.env import Variable
from memq.exceptions import DiskFullError, SettingError, StorageError
from memq.storage.postgres.url import shown_url

INSTALL_HINT: Final = "pip install 'memq[postgres]'"

try:
    import psycopg
    import psycopg_pool
    from psycopg import sql
    from psycopg.types.string import StrDumperUnknown
except ImportError as exc:  # the postgres extra is not installed
    raise SettingError(
        f"{Variable.DATABASE_URL} chooses PostgreSQL, whose driver is not installed: {INSTALL_HINT}"
    ) from exc

# What a NUL character in a text becomes: PostgreSQL's text cannot hold U+0000, SQLite's can.
NUL_REPLACEMENT: Final = "\ufffd"


# In JSON text, an escape \u0000 whose backslash is not itself escaped.
_JSON_NUL: Final = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def nul_free(text: str) -> str:
    """``text`` without NUL: each NUL character, and in a JSON text each ``\\u0000`` escape,
    becomes U+FFFD (PostgreSQL's text cannot hold NUL, nor can its JSON functions turn the
    escape into text)."""
    text = text.replace("\x00", NUL_REPLACEMENT)
    if "\\u0000" not in text or text.lstrip()[:1] not in ("[", "{", '"'):
        return text
    try:
        json.loads(text)
    except ValueError:
        return text  # prose that quotes the escape: kept as written
    # The character itself, not its escape: memq writes JSON with ensure_ascii=False, and
    # the comparison that finds an imported record already stored compares JSON texts.
    return _JSON_NUL.sub(lambda m: m.group(1) + NUL_REPLACEMENT, text)


class NulFreeStrDumper(StrDumperUnknown):
    """Python strings as text, without NUL (``nul_free``).

    A tool's output or a model's answer may hold a NUL; PostgreSQL refuses any text that
    does, so the message storing it would fail every attempt and end failed. memq stores
    U+FFFD in its place (the README says so); SQLite keeps the NUL."""

    def dump(self, obj: str) -> bytes:
        return nul_free(obj).encode(self._encoding)


def adapt(conn: psycopg.AsyncConnection[Any]) -> None:
    """Make ``conn`` dump strings as memq stores them (``NulFreeStrDumper``)."""
    conn.adapters.register_dumper(str, NulFreeStrDumper)


# An unquoted PostgreSQL identifier: what memq accepts as a schema name.
_SCHEMA_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How memq's connections are made and limited.

    ``schema``: the schema to work in (``search_path``), None for the URL's or the server's
    default; tests use a fresh one each. Times are seconds; 0 turns a limit off.
    """

    schema: str | None = None
    connect_timeout: float = 5.0  # reaching the server, and a pool's first connections
    statement_timeout: float = 30.0  # one statement
    lock_timeout: float = 10.0  # waiting for a row or table lock
    # A transaction left open (a daemon stuck between statements) is ended by the server,
    # so the rows it claimed or locked do not stay locked.
    idle_in_transaction_timeout: float = 60.0
    min_size: int = 1  # pool connections kept open
    max_size: int = 8
    application_name: str = "memq"
    # Every transaction read-only (the CLI's and MCP server's reads with no daemon answering).
    read_only: bool = False

    def __post_init__(self) -> None:
        if self.schema is not None and not _SCHEMA_NAME.match(self.schema):
            raise SettingError(
                f"schema {self.schema!r} is not a plain lowercase PostgreSQL identifier"
            )


def _connect_kwargs(options: ConnectOptions) -> dict[str, Any]:
    # libpq takes whole seconds, and treats 1 as 2.
    return {
        "autocommit": True,
        "connect_timeout": max(2, round(options.connect_timeout)),
        "application_name": options.application_name,
    }


def _session_settings(options: ConnectOptions) -> sql.Composed:
    """The SET statements every new connection runs (one round trip)."""
    statements = [
        sql.SQL("SET statement_timeout = {}").format(_ms(options.statement_timeout)),
        sql.SQL("SET lock_timeout = {}").format(_ms(options.lock_timeout)),
        sql.SQL("SET idle_in_transaction_session_timeout = {}").format(
            _ms(options.idle_in_transaction_timeout)
        ),
        # Epoch-millisecond times are computed by memq, but a timestamp a server function
        # prints (the logs, a hand-run query) reads the same on every host.
        sql.SQL("SET TIME ZONE 'UTC'"),
    ]
    if options.read_only:
        statements.append(sql.SQL("SET default_transaction_read_only = on"))
    if options.schema is not None:
        statements.append(sql.SQL("SET search_path TO {}").format(sql.Identifier(options.schema)))
    return sql.SQL("; ").join(statements)


def _ms(seconds: float) -> sql.Literal:
    return sql.Literal(max(0, round(seconds * 1000)))


async def connect(url: str, options: ConnectOptions | None = None) -> psycopg.AsyncConnection[Any]:
    """One configured connection to ``url`` (``memq migrate``, tests).

    Raises:
        StorageError: the server cannot be reached or refused the connection.
    """
    options = options or ConnectOptions()
    with storage_errors(url):
        conn = await psycopg.AsyncConnection.connect(url, **_connect_kwargs(options))
        adapt(conn)
        try:
            await conn.execute(_session_settings(options))
        except BaseException:
            await conn.close()
            raise
    return conn


async def open_pool(
    url: str, options: ConnectOptions | None = None
) -> psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    """An open pool of configured connections to ``url``, its first ``min_size``
    connections made. Close it with ``await pool.close()``.

    Raises:
        StorageError: no connection could be made within ``connect_timeout``.
    """
    options = options or ConnectOptions()
    settings = _session_settings(options)

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        adapt(conn)
        await conn.execute(settings)

    pool = psycopg_pool.AsyncConnectionPool(
        url,
        kwargs=_connect_kwargs(options),
        min_size=options.min_size,
        max_size=options.max_size,
        open=False,
        configure=configure,
        # A connection the server ended while it sat in the pool (a restart, an idle
        # timeout) is found out and replaced before it is handed out, not on first use.
        check=psycopg_pool.AsyncConnectionPool.check_connection,
        timeout=options.connect_timeout,  # waiting for a free connection
        name=options.application_name,
    )
    try:
        with storage_errors(url):
            await pool.open(wait=True, timeout=options.connect_timeout)
    except BaseException:
        await pool.close()
        raise
    return pool


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn the driver's and the pool's errors into ``StorageError`` naming the server
    (without its password)."""
    try:
        yield
    except psycopg_pool.PoolTimeout as exc:
        raise StorageError(
            f"PostgreSQL at {shown_url(url)}: no connection within the time limit ({exc})"
        ) from exc
    except psycopg.errors.DiskFull as exc:
        raise DiskFullError(f"PostgreSQL at {shown_url(url)} is out of disk space") from exc
    except psycopg.Error as exc:
        raise StorageError(f"PostgreSQL at {shown_url(url)}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
