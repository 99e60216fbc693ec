"""The whole ``oarsched-kao`` process: one meta-scheduler round, then a second with nothing changed.

``python -m benchmarks.kao [--no-pg] [NAME ...]`` measures, on the shared bench
cases (default ``normal-10k-100`` and ``nodeonly-10k-500``), interpreter start
to last notification (the bipbip commander and Almighty are real ZeroMQ PULL
sockets in this process), wall time and peak RSS, on SQLite and on PostgreSQL,
and writes ``benchmarks/results/kao.md`` and ``kao.json``.  The pytest form
is ``benchmarks/test_bench_kao.py``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from benchmarks import measure, workloads

CASES = ["normal-10k-100", "nodeonly-10k-500"]
RESULTS = Path(__file__).resolve().parent / "results"


class Listener:
    """A ZeroMQ PULL socket on 127.0.0.1 counting what it receives (Almighty, the bipbip commander)."""

    def __init__(self) -> None:
        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.sock.poll(20):
                self.sock.recv()
                self.count += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.ctx.term()


@contextmanager
def endpoints(conf: Path) -> Iterator[dict[str, Listener]]:
    """Listeners for Almighty and the bipbip commander, their ports appended to ``conf``."""
    got = {"almighty": Listener(), "bipbip": Listener()}
    with conf.open("a") as f:
        f.write(f'\nSERVER_HOSTNAME="127.0.0.1"\nAPPENDICE_SERVER_PORT="{got["almighty"].port}"\n'
                f'BIPBIP_COMMANDER_SERVER="127.0.0.1"\nBIPBIP_COMMANDER_PORT="{got["bipbip"].port}"\n')
    try:
        yield got
    finally:
        for listener in got.values():
            listener.close()


def kao_command() -> list[str]:
    exe = shutil.which("oarsched-kao")
    return [exe] if exe else [sys.executable, "-m", "oarsched.oar.kao"]


def case_now(case: Path) -> int:
    return int(json.loads((case / "case.json").read_text())["now"])


def kao_env(conf: Path) -> dict[str, str]:
    env = measure.child_env()
    env.update({"OARCONFFILE": str(conf), "OARDO_USER": "oar"})
    return env


def kao_process(case: Path, conf: Path, server: Path | None = None) -> measure.ProcessRun:
    """``oarsched-kao --now NOW`` from the case folder (``--server SOCKET`` with a resident server): wall time
    and peak RSS of that process."""
    extra = ["--server", str(server)] if server is not None else []
    run = measure.run_measured([*kao_command(), *extra, "--now", str(case_now(case))], cwd=case, env=kao_env(conf))
    if run.rc not in (0, 1, 2):
        raise RuntimeError(f"oarsched-kao failed on {case} (exit {run.rc})")
    return run


@contextmanager
def resident_server(path: Path, case: Path, conf: Path) -> Iterator[subprocess.Popen]:
    """``oarsched kao-server`` on the socket ``path``, started before the rounds (as a site's service is),
    stopped after; what it said is in ``server.log`` in the case folder."""
    log = (case / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "oarsched.cli", "kao-server", "--socket", str(path)], cwd=case,
                            env=kao_env(conf), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kao server did not start (see {case / 'server.log'})")
            time.sleep(0.05)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


def two_rounds(case: Path, conf: Path, *, resident: bool = False) -> dict:
    """The first round on the case, then a second one on its result (nothing else changed); with
    ``resident``, both through a resident kao server (its start not counted: a service starts once)."""
    sock = case / "kao.sock" if resident else None
    with endpoints(conf) as got, (resident_server(sock, case, conf) if sock else nullcontext()) as server:
        first = kao_process(case, conf, sock)
        launched = got["bipbip"].count
        second = kao_process(case, conf, sock)
        out = {"first_s": first.wall, "first_peak_mb": first.peak_mb, "second_s": second.wall,
               "second_peak_mb": second.peak_mb, "launched": launched, "exit": first.rc}
        if server is not None:
            out["server_peak_mb"] = peak_mb(server.pid)
    return out


def peak_mb(pid: int) -> float:
    """Peak resident memory of a live process (Linux ``VmHWM``), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sqlite_case(name: str, scratch: Path) -> tuple[Path, Path]:
    bench = workloads.shared_bench_dir()
    if bench is None or not (bench / name / "before.sqlite").is_file():
        raise FileNotFoundError(f"bench case {name} not found (shared bench folder)")
    dst = scratch / f"{name}-{uuid.uuid4().hex[:6]}"
    shutil.copytree(bench / name, dst)
    return dst, dst / "oar.conf"


def pg_case(name: str, scratch: Path, admin_url: str) -> tuple[Path, Path]:
    from tests.pgserver import copy_sqlite_to_pg, create_database

    case, _ = sqlite_case(name, scratch)
    url = create_database(admin_url, "kaobench_" + uuid.uuid4().hex[:10])
    copy_sqlite_to_pg(case / "before.sqlite", url)
    return case, measure.pg_conf(case, url)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", default=CASES)
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = ap.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="kao-bench-"))
    data: dict[str, dict] = {"sqlite": {}, "postgresql": {}}
    server = None
    try:
        for name in args.names:
            data["sqlite"][name] = both_ways(lambda: sqlite_case(name, scratch))
            print(name, "sqlite", data["sqlite"][name], file=sys.stderr, flush=True)
        if not args.no_pg:
            from tests.pgserver import PgServer, find_pg_bin

            if find_pg_bin() is not None:
                server = PgServer()
                admin = server.start()
                for name in args.names:
                    data["postgresql"][name] = both_ways(lambda: pg_case(name, scratch, admin))
                    print(name, "postgresql", data["postgresql"][name], file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kao.json").write_text(json.dumps(data, indent=1) + "\n")
    (RESULTS / "kao.md").write_text(report(data))
    print(report(data))
    return 0


def both_ways(fresh_case) -> dict:
    """Two rounds on a fresh copy of the case by a fresh process each, then two on another fresh copy through
    a resident server."""
    alone = two_rounds(*fresh_case())
    alone["resident"] = two_rounds(*fresh_case(), resident=True)
    return alone


def report(data: dict) -> str:
    intro = ("Interpreter start to last notification (`python -m benchmarks.kao`), on a fresh copy of each shared "
             "bench case; the second round runs on the first one's result with nothing changed. \"fresh "
             "process\": `oarsched-kao` runs the round itself; \"resident server\": `oarsched-kao --server "
             "SOCKET` has a running `oarsched kao-server` run it (another fresh copy; the server's own start is "
             "not counted, its peak memory is). One run each, on a shared 2-core machine (noisy).")
    lines = ["# `oarsched-kao`: the whole meta-scheduler round", "", intro, "",
             "| backend | case | jobs launched | fresh process: first round (s) | peak (MB) | second round (s) | "
             "peak (MB) | resident server: first round (s) | second round (s) | server peak (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for backend, rows in data.items():
        for name, r in rows.items():
            s = r["resident"]
            lines.append(f"| {backend} | {name} | {r['launched']} | {r['first_s']:.2f} | {r['first_peak_mb']:.0f} | "
                         f"{r['second_s']:.2f} | {r['second_peak_mb']:.0f} | {s['first_s']:.2f} | "
                         f"{s['second_s']:.2f} | {s['server_peak_mb']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
