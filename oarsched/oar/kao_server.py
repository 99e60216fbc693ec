"""The resident kao server: ``oarsched-kao`` rounds without a fresh interpreter's start.

A fresh ``oarsched-kao`` spends most of a quiet round starting up: importing
SQLAlchemy, numpy and the compiled core, and reading the database's table
definitions.  ``oarsched kao-server --socket SOCKET`` pays that once and then
serves rounds: each ``oarsched-kao --server SOCKET`` (a standard-library-only
client, :mod:`oarsched.oar.kao_client`) sends its arguments, environment and
working directory; the server runs :func:`oarsched.oar.kao.main` with them,
exactly as the client process would have, and answers with the exit status
and what the round printed.  Notifications are sent by the server before it
answers, so that the client's exit still comes after the last one.

What stays warm between rounds is only what cannot change unseen: the
modules, and each database's engine and reflected tables, reused while the
database is the same (SQLite: the same file and ``schema_version``;
PostgreSQL: the same columns in the current schema), and on SQLite what the
last round left in the gantt resource tables, as long as nothing was
committed since (:class:`oarsched.oar.metadb.GanttMemo`).  ``oar.conf`` is
read anew each round, and so are the jobs, the resources and the queues.

Rounds run one at a time, in the order clients connect (Almighty runs one
anyway).  The socket is created private to the server's user, and a client
of another user is refused.  A client of another installed package, or a
server whose package files changed on disk since it started, gets a refusal
and runs the round itself; in the second case the server then exits, for its
supervisor to start the new code.  SIGTERM or SIGINT stop the server after
the round in progress.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from oarsched.errors import ConfigError
from oarsched.oar import kao
from oarsched.oar.db import OarDatabase
from oarsched.oar.kao_client import PROTOCOL, package_dir, recv_message, send_message
from oarsched.oar.metadb import GanttMemo

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

REQUEST_TIMEOUT = 10.0
"""Seconds a client has to send its request once connected."""

MAX_DATABASES = 4
"""Databases kept open at once (least recently used closed first)."""

PG_SCHEMA_SIGNATURE = (
    "SELECT count(*), coalesce(sum(hashtext(concat_ws(':', c.relname, a.attname, a.atttypid, a.atttypmod, "
    "a.attnotnull))), 0) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
)


def schema_signature(db: OarDatabase) -> tuple:
    """What the reflected tables of ``db`` rest on: when it changes they are read again.

    SQLite: the file's identity (a file replaced at the same path is another database) and its
    ``schema_version``, which SQLite bumps on every schema change.  PostgreSQL: a hash of every column
    of the current schema's tables (name, type, its modifier, nullability).
    """
    if db.dialect == "sqlite":
        path = db.engine.url.database
        ident: tuple = ()
        if path and path != ":memory:":
            st = os.stat(path)
            ident = (st.st_dev, st.st_ino)
        with db.engine.connect() as conn:
            return (*ident, conn.exec_driver_sql("PRAGMA schema_version").scalar())
    with db.engine.connect() as conn:
        return tuple(conn.execute(text(PG_SCHEMA_SIGNATURE)).one())


@dataclass
class _OpenDatabase:
    db: OarDatabase
    signature: tuple


class DatabaseCache:
    """Databases kept open between rounds, keyed by URL and working directory (a relative SQLite path)."""

    def __init__(self, size: int = MAX_DATABASES) -> None:
        self.size = size
        self._open: OrderedDict[tuple[str, str], _OpenDatabase] = OrderedDict()
        self.reflections = 0

    def open(self, url: str) -> OarDatabase:
        key = (url, os.getcwd())
        entry = self._open.pop(key, None)
        if entry is not None:
            try:
                if schema_signature(entry.db) == entry.signature:
                    self._open[key] = entry
                    return entry.db
            except Exception:  # noqa: BLE001 - gone or unreadable: opened anew below, which reports it
                pass
            entry.db.engine.dispose()
        db = OarDatabase(url, pre_ping=True)
        db.gantt_memo = GanttMemo()
        self.reflections += 1
        self._open[key] = _OpenDatabase(db, schema_signature(db))
        while len(self._open) > self.size:
            _, old = self._open.popitem(last=False)
            old.db.engine.dispose()
        return db

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].db.engine.dispose()


def code_stamp(root: str | None = None) -> tuple[int, int]:
    """(files, newest modification time) of the package's modules: a reinstall changes it."""
    base = Path(root or package_dir())
    times = [p.stat().st_mtime_ns for p in base.rglob("*") if p.suffix in (".py", ".so")]
    return len(times), max(times, default=0)


def peer_uid(conn: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (Linux ``SO_PEERCRED``)."""
    _, uid, _ = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return uid


@contextlib.contextmanager
def client_context(request: dict) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """The client's environment and working directory for one round, its output captured; then back."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request.get("env") or {}).items()})
    try:
        os.chdir(str(request.get("cwd") or "/"))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)


class KaoServer:
    """Serves kao rounds on a Unix socket until stopped (see the module's docstring)."""

    def __init__(self, path: str, *, max_rounds: int | None = None, uid: int | None = None,
                 package: str | None = None) -> None:
        """``uid``: the user whose clients are served (default: the server's); ``package``: the package
        directory clients must come from and whose files must not change (default: this one)."""
        self.path = path
        self.max_rounds = max_rounds
        self.uid = os.getuid() if uid is None else uid
        self.package = package or package_dir()
        self.stamp = code_stamp(self.package)
        self.databases = DatabaseCache()
        self.rounds = 0
        self._busy = False
        self._stopping = False
        self._sock: socket.socket | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def bind(self) -> None:
        """Listen on the socket path, private to this user; a live server there is an error, a dead
        one's socket file is replaced."""
        if os.path.exists(self.path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
            except OSError:
                os.unlink(self.path)  # left by a server that died
            else:
                raise ConfigError(f"a kao server already listens on {self.path}")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(self.path)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {self.path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)
        sock.listen(16)
        self._sock = sock

    def serve_forever(self) -> int:
        """Accept and serve rounds until SIGTERM/SIGINT, ``max_rounds`` or a code change; returns 0."""
        if self._sock is None:
            self.bind()
        signals = (signal.SIGTERM, signal.SIGINT) if threading.current_thread() is threading.main_thread() else ()
        previous = {s: signal.signal(s, self._on_signal) for s in signals}
        say(f"listening on {self.path} (pid {os.getpid()})")
        try:
            while not self._stopping:
                try:
                    conn, _ = self._sock.accept()  # type: ignore[union-attr]
                    with conn:
                        self.handle(conn)
                except _Stop:  # idle (or not yet busy with the connection just accepted, whose client runs it)
                    break
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.close()
        return 0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.databases.close()
        say(f"stopped after {self.rounds} rounds")

    def _on_signal(self, signum, frame) -> None:
        self._stopping = True
        if not self._busy:
            raise _Stop

    # -- one client --------------------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        """Read one request, run its round (or refuse it), answer."""
        self._busy = True
        try:
            try:
                uid = peer_uid(conn)
                conn.settimeout(REQUEST_TIMEOUT)  # a client that connects and says nothing must not stall rounds
                request = recv_message(conn)
                conn.settimeout(None)
            except (OSError, ValueError) as exc:
                say(f"bad request: {exc}")
                return
            refusal = self.refusal(request, uid)
            answer = {"refused": refusal} if refusal else self.run_round(request)
            try:
                send_message(conn, answer)
            except OSError as exc:
                say(f"client gone before the answer: {exc}")
        finally:
            self._busy = False

    def refusal(self, request: dict, uid: int) -> str | None:
        """Why this server must not run the request's round, or None."""
        if uid != self.uid:
            return f"client user id {uid} is not the server's ({self.uid})"
        if request.get("protocol") != PROTOCOL:
            return f"protocol {request.get('protocol')!r} (the server speaks {PROTOCOL})"
        if request.get("package") != self.package:
            return f"the client's package is {request.get('package')}, the server's {self.package}"
        if code_stamp(self.package) != self.stamp:
            self._stopping = True
            return "the package changed on disk since the server started (server exiting)"
        if not isinstance(request.get("argv"), list):
            return "no argument list"
        return None

    def run_round(self, request: dict) -> dict:
        started = time.perf_counter()
        try:
            with client_context(request) as (out, err):
                try:
                    code = kao.main([str(a) for a in request["argv"]], open_database=self.databases.open)
                except BaseException as exc:  # noqa: BLE001 - the server outlives any round
                    print(f"{kao.PROG}: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
                    code = 1
            answer = {"exit": code, "stdout": capped(out.getvalue()), "stderr": capped(err.getvalue())}
        except OSError as exc:  # the client's working directory cannot be entered: nothing ran
            answer = {"exit": 1, "stdout": "",
                      "stderr": f"{kao.PROG}: error: working directory {request.get('cwd')!r}: {exc.strerror or exc}\n"}
        self.rounds += 1
        if self.max_rounds is not None and self.rounds >= self.max_rounds:
            self._stopping = True
        say(f"round {self.rounds}: exit {answer['exit']} in {time.perf_counter() - started:.3f} s")
        return answer


MAX_OUTPUT = 4 * 1024 * 1024
"""Characters of a round's standard output or error passed back (its log at debug level can be long):
beyond, the first ones are dropped, the answer must reach the client."""


def capped(text: str) -> str:
    if len(text) <= MAX_OUTPUT:
        return text
    return f"[{len(text) - MAX_OUTPUT} characters of output dropped]\n" + text[-MAX_OUTPUT:]


class _Stop(Exception):
    """Raised by the signal handler to leave ``accept`` when no round is running."""


def say(message: str) -> None:
    """The server's own lines (its start, rounds, stop) on its standard error: the service's journal."""
    print(f"oarsched kao-server: {message}", file=sys.__stderr__, flush=True)


def serve(path: str, *, max_rounds: int | None = None) -> int:
    """``oarsched kao-server``: serve rounds on ``path`` until stopped."""
    return KaoServer(path, max_rounds=max_rounds).serve_forever()
