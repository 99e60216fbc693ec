"""A throwaway PostgreSQL server for the tests.

- ``OARSCHED_TEST_PG_URL`` set: that server is used (an admin URL able to
  ``CREATE DATABASE``); nothing is started.
- otherwise ``initdb``/``pg_ctl`` are looked for on ``PATH`` and in
  ``/usr/lib/postgresql/*/bin``; a cluster is created in a temporary folder
  (data and unix-socket directories inside it), started on a free loopback
  port with a random password, and stopped and deleted at the end of the
  session (or at interpreter exit).  As root, the PostgreSQL programs run as
  the ``postgres`` user (PostgreSQL refuses to run as root), the folder being
  handed over to it.
- no PostgreSQL: the ``pg_server`` fixture skips, unless
  ``OARSCHED_REQUIRE_PG`` or ``CI`` is set, in which case it fails.

``create_database(admin_url, name)`` makes a fresh database and returns its
URL; ``copy_sqlite_to_pg(sqlite_path, pg_url)`` recreates OAR3's schema there
(with the site columns of the SQLite ``resources``) and copies every row
(``on_int_overflow="widen"`` for SQLite values beyond PostgreSQL's 32-bit
``INTEGER``, e.g. the 2**31 s walltimes of the ``unschedulable_*`` cases).

The fixtures are ``pg_server`` (session) and ``pg_url`` (a fresh database per
test); import them where used (``from tests.pgserver import pg_server, pg_url``)
or in ``tests/conftest.py``.  However many modules import them, one server
runs per test process.
"""
from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import BigInteger, Integer, MetaData, create_engine, inspect, select, text
from sqlalchemy.engine import URL, make_url

from oarsched.oar.schema import OAR_TABLES, make_metadata, resource_site_columns

ENV_URL = "OARSCHED_TEST_PG_URL"
ENV_REQUIRE = "OARSCHED_REQUIRE_PG"
PG_USER = "postgres"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server can be provided."""


# ----------------------------------------------------------------------------- locating
def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
            if out:
                candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(p: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([\d.]+)/bin", p)
        return tuple(int(x) for x in m.group(1).split(".")) if m else (0,)

    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/usr/pgsql-*/bin"):
        for d in sorted(glob.glob(pattern), key=version, reverse=True):
            candidates.append(Path(d))
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- server
class PgServer:
    """A private PostgreSQL cluster in a temporary folder."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_pg_bin()
        if self.bindir is None:
            raise PgUnavailable("initdb/pg_ctl not found (PATH, /usr/lib/postgresql/*/bin); "
                                "install PostgreSQL (.ci/postgres.sh) or set " + ENV_URL)
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self._pw = pwd.getpwnam(PG_USER)
            except KeyError:
                raise PgUnavailable(f"running as root and there is no {PG_USER!r} user "
                                    "to run PostgreSQL as") from None
        self.tmp: Path | None = None
        self.port: int | None = None
        self.password = secrets.token_hex(16)
        self.running = False

    # -- helpers
    def _cmd(self, args: list[str]) -> list[str]:
        if not self.as_root:
            return args
        if shutil.which("runuser"):
            return ["runuser", "-u", PG_USER, "--", *args]
        return ["su", PG_USER, "-s", "/bin/sh", "-c", shlex.join(args)]

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._cmd(args), cwd=self.tmp, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise PgUnavailable(f"{' '.join(args[:2])} failed ({proc.returncode}):\n"
                                f"{proc.stdout}\n{proc.stderr}\n{self._log_tail()}")
        return proc

    def _log_tail(self) -> str:
        if self.tmp is None:
            return ""
        log = self.tmp / "postgres.log"
        try:
            return "--- server log ---\n" + log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    @property
    def datadir(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "data"

    @property
    def sockdir(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "sock"

    # -- lifecycle
    def start(self) -> str:
        """Create and start the cluster; return the admin URL."""
        self.tmp = Path(tempfile.mkdtemp(prefix="oarsched-pg-"))
        atexit.register(self.stop)
        self.sockdir.mkdir()
        pwfile = self.tmp / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(self.tmp, 0o700)
        if self.as_root:
            for p in (self.tmp, self.sockdir, pwfile):
                os.chown(p, self._pw.pw_uid, self._pw.pw_gid)
        self._run([
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", PG_USER,
            "--pwfile", str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256",
            "-E", "UTF8", "--no-locale", "--no-sync",
        ])
        pwfile.unlink()
        last_error: Exception | None = None
        for _ in range(5):  # the free port may be taken between probe and bind
            self.port = _free_port()
            opts = (f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=50")
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
                           str(self.tmp / "postgres.log"), "-w", "-t", "60", "-o", opts,
                           "start"])
                self.running = True
                break
            except PgUnavailable as exc:
                last_error = exc
                if "already in use" not in str(exc) and "could not bind" not in str(exc):
                    raise
        else:
            raise PgUnavailable(f"could not start PostgreSQL: {last_error}")
        url = self.admin_url
        _wait_ready(url)
        return url

    @property
    def admin_url(self) -> str:
        return URL.create("postgresql+psycopg", username=PG_USER, password=self.password,
                          host="127.0.0.1", port=self.port,
                          database="postgres").render_as_string(hide_password=False)

    def stop(self) -> None:
        """Stop the server (if started) and delete the folder. Idempotent."""
        if self.running:
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
                           "-w", "-t", "60", "stop"])
            except (PgUnavailable, subprocess.SubprocessError):
                try:
                    self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                               "-m", "immediate", "-w", "stop"])
                except (PgUnavailable, subprocess.SubprocessError):
                    pass
            self.running = False
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def _wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        finally:
            engine.dispose()


def _normalize(url: str) -> str:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "pg"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


# ----------------------------------------------------------------------------- fixture
# One server per process, however many test modules import the fixture (each
# import makes its own session-scoped FixtureDef): reference-counted.
_SHARED: dict = {"server": None, "url": None, "users": 0}


def _acquire() -> str:
    if _SHARED["url"] is None:
        server = PgServer()
        try:
            url = server.start()
        except BaseException:
            server.stop()
            raise
        _SHARED.update(server=server, url=url)
    _SHARED["users"] += 1
    return _SHARED["url"]


def _release() -> None:
    _SHARED["users"] -= 1
    if _SHARED["users"] <= 0 and _SHARED["server"] is not None:
        _SHARED["server"].stop()
        _SHARED.update(server=None, url=None, users=0)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Admin URL (``postgresql+psycopg://...``) of a PostgreSQL server for this session."""
    env = os.environ.get(ENV_URL)
    if env:
        url = _normalize(env)
        _wait_ready(url, timeout=10)
        yield url
        return
    try:
        url = _acquire()
    except (PgUnavailable, OSError, subprocess.SubprocessError) as exc:
        if os.environ.get(ENV_REQUIRE) or os.environ.get("CI"):
            pytest.fail(f"PostgreSQL required ({ENV_REQUIRE} or CI is set) but unavailable: {exc}",
                        pytrace=False)
        pytest.skip(f"no PostgreSQL: {exc}")
    try:
        yield url
    finally:
        _release()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server; dropped afterwards."""
    name = "oarsched_" + uuid.uuid4().hex[:12]
    url = create_database(pg_server, name)
    try:
        yield url
    finally:
        drop_database(pg_server, name)


# ----------------------------------------------------------------------------- helpers
def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_database(admin_url: str, name: str, *, locale: str | None = None) -> str:
    """(Re)create database ``name`` (UTF8; collation of the cluster, C here, or
    ``locale``) and return its URL."""
    engine = create_engine(_normalize(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)"))
            sql = f"CREATE DATABASE {_quote_ident(name)} TEMPLATE template0 ENCODING 'UTF8'"
            if locale:
                sql += f" LC_COLLATE '{locale}' LC_CTYPE '{locale}'"
            conn.execute(text(sql))
    finally:
        engine.dispose()
    return make_url(_normalize(admin_url)).set(database=name).render_as_string(
        hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(_normalize(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)"))
    finally:
        engine.dispose()


def sqlite_ro_url(path: str | os.PathLike) -> str:
    """A read-only SQLAlchemy URL for a SQLite file (nothing can be written to it)."""
    return f"sqlite:///file:{os.path.abspath(path)}?mode=ro&uri=true"


INT32 = (-(2**31), 2**31 - 1)


def copy_sqlite_to_pg(sqlite_path: str | os.PathLike, pg_url: str, *,
                      on_int_overflow: str = "error") -> dict[str, int]:
    """Recreate OAR3's schema in ``pg_url`` (an empty database) and copy every
    row of the SQLite file.

    The SQLite file is opened read-only.  Site columns of ``resources`` keep
    their reflected types; tables outside OAR3's schema are not copied.  The
    ``SERIAL`` sequences are moved past the copied ids.  Returns
    ``{table: rows copied}``.

    SQLite stores any 64-bit value in an ``INTEGER`` column; PostgreSQL's
    ``INTEGER`` (what OAR3's schema gives there) is 32-bit.  A value that does
    not fit raises ``ValueError`` naming it (``on_int_overflow="error"``), or
    with ``on_int_overflow="widen"`` the PostgreSQL column is made ``BIGINT``
    (a departure from OAR3's schema, only for that column).
    """
    if on_int_overflow not in ("error", "widen"):
        raise ValueError(f"on_int_overflow must be 'error' or 'widen', not {on_int_overflow!r}")
    src = create_engine(sqlite_ro_url(sqlite_path))
    dst = create_engine(_normalize(pg_url))
    counts: dict[str, int] = {}
    try:
        with src.connect() as sconn:
            names = [t for t in inspect(sconn).get_table_names() if t in OAR_TABLES]
            extras = resource_site_columns(sconn)
            src_md = MetaData()
            src_md.reflect(bind=sconn, only=names)
            md = make_metadata(extras)
            data: dict[str, list[dict]] = {}
            overflows: dict[tuple[str, str], int] = {}
            for name in names:
                stable, dtable = src_md.tables[name], md.tables[name]
                missing = [c.name for c in stable.columns if c.name not in dtable.c]
                if missing:
                    raise RuntimeError(f"{name}: columns {missing} unknown to OAR3's schema")
                rows = [dict(r._mapping) for r in sconn.execute(select(stable))]
                data[name] = rows
                small = [c.name for c in dtable.columns
                         if isinstance(c.type, Integer) and not isinstance(c.type, BigInteger)]
                for row in rows:
                    for col in small:
                        v = row.get(col)
                        if isinstance(v, int) and not INT32[0] <= v <= INT32[1]:
                            overflows.setdefault((name, col), v)
            if overflows and on_int_overflow == "error":
                raise ValueError(
                    f"{sqlite_path}: value(s) too large for PostgreSQL INTEGER: "
                    + ", ".join(f"{t}.{c}={v}" for (t, c), v in sorted(overflows.items()))
                    + " (pass on_int_overflow='widen' to make those columns BIGINT)")
            md.create_all(dst)
            with dst.begin() as dconn:
                for (t, c) in sorted(overflows):
                    dconn.execute(text(f'ALTER TABLE "{t}" ALTER COLUMN "{c}" TYPE BIGINT'))
                    md.tables[t].c[c].type = BigInteger()  # psycopg casts binds to the type
                for name in names:
                    if data[name]:
                        dconn.execute(md.tables[name].insert(), data[name])
                    counts[name] = len(data[name])
                for table in md.sorted_tables:
                    if table.name not in counts:
                        continue
                    auto = table.autoincrement_column
                    if auto is not None:
                        dconn.execute(text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                            f"'{auto.name}'), COALESCE((SELECT MAX({auto.name}) FROM "
                            f"{table.name}), 0) + 1, false)"))
    finally:
        src.dispose()
        dst.dispose()
    return counts
