"""The meta-scheduler's notifications: Almighty and the bipbip commander (ZeroMQ PUSH), oarsub (TCP).

The round collects them in an :class:`Outbox` while it decides, and sends
them only after its transaction is committed, so that nobody is told about
a job before the database says so.  A failed send is logged and reported to
the caller; it never undoes the round.
"""
from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from oarsched.oar.shell import run_shell
from oarsched.oar.user_notify import UserNotification

log = logging.getLogger("oarsched.kao.notify")

ZMQ_LINGER_MS = 2000
"""How long closing a PUSH socket waits for unsent messages (the peer may be slow to accept)."""

TCP_TIMEOUT = 5.0


@dataclass
class TcpMessage:
    """One TCP connection to a waiting oarsub (``host:port`` from ``jobs.info_type``)."""

    job_id: int
    address: str | None
    text: str
    on_refused: str | None = None
    """What the round does when nobody listens (``lost_session``, ``cannot_notify``) or None."""


@dataclass
class NodeCommands:
    """Energy saving: nodes to switch off and on, through Greta or the configured commands."""

    halt: list[str] = field(default_factory=list)
    wakeup: list[str] = field(default_factory=list)
    internal: bool = False
    """Greta (``ENERGY_SAVING_INTERNAL=yes``) rather than the commands."""
    sleep_cmd: str = ""
    wakeup_cmd: str = ""
    timeout: float = 10.0
    greta: str = ""


@dataclass
class Outbox:
    """Everything the round will send once committed, in order."""

    almighty: list[dict] = field(default_factory=list)
    bipbip: list[dict] = field(default_factory=list)
    tcp: list[TcpMessage] = field(default_factory=list)
    nodes: NodeCommands | None = None
    users: list[UserNotification] = field(default_factory=list)
    """Users' mails and commands (``jobs.notify``), sent after everything else."""
    _run_sent: set[int] = field(default_factory=set)

    def chstate(self) -> None:
        self.almighty.append({"cmd": "ChState"})

    def qdel(self) -> None:
        self.almighty.append({"cmd": "Qdel"})

    def run_job(self, job_id: int) -> None:
        """Tell the bipbip commander to start the job (once per job and round)."""
        if job_id in self._run_sent:
            return
        self._run_sent.add(job_id)
        self.bipbip.append({"job_id": job_id, "cmd": "OARRUN", "args": []})

    def oarsub(self, job_id: int, address: str | None, text: str, on_refused: str | None = None) -> None:
        self.tcp.append(TcpMessage(job_id, address, text, on_refused))


@dataclass
class Endpoints:
    almighty: str
    bipbip: str

    @classmethod
    def from_config(cls, config) -> Endpoints:
        # the ports are joined as text whatever oar.conf's parser made of them (OAR3 crashes on ints: M15)
        server = config.get("SERVER_HOSTNAME", "localhost")
        port = config.get("APPENDICE_SERVER_PORT", "6670")
        bserver = config.get("BIPBIP_COMMANDER_SERVER", "localhost")
        bport = config.get("BIPBIP_COMMANDER_PORT", "6671")
        return cls(almighty=f"tcp://{server}:{port}", bipbip=f"tcp://{bserver}:{bport}")


def send_all(outbox: Outbox, endpoints: Endpoints, on_refused: Callable[[TcpMessage], None]) -> list[str]:
    """Send the outbox; returns the failures (logged).  ``on_refused`` gets the TCP messages nobody took."""
    failures: list[str] = []
    for msg in outbox.tcp:
        ok, why = send_tcp(msg.address, msg.text)
        if not ok:
            failures.append(f"job {msg.job_id}: oarsub at {msg.address}: {why}")
            log.warning("job %s: cannot notify oarsub at %s: %s", msg.job_id, msg.address, why)
            if msg.on_refused:
                on_refused(msg)
    if outbox.nodes is not None:
        failures += switch_nodes(outbox.nodes)
    for name, messages, url in (("bipbip commander", outbox.bipbip, endpoints.bipbip),
                                ("almighty", outbox.almighty, endpoints.almighty)):
        if messages:
            refused = send_zmq(url, messages)
            if refused:
                failures.append(f"{name} at {url}: {refused}")
                log.error("cannot notify the %s at %s: %s (%d messages)", name, url, refused, len(messages))
    return failures


def send_zmq(url: str, messages: list[dict]) -> str | None:
    """PUSH the messages as JSON; None on success, else why not."""
    try:
        import zmq
    except ImportError:  # pragma: no cover - a dependency
        return "pyzmq is not installed"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    try:
        # IMMEDIATE: a send waits for a connected peer (at most SNDTIMEO) instead of queueing
        # silently, so an endpoint that is down is seen and logged
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.LINGER, ZMQ_LINGER_MS)
        sock.setsockopt(zmq.SNDTIMEO, ZMQ_LINGER_MS)
        sock.connect(url)
        for i, msg in enumerate(messages):
            try:
                sock.send(json.dumps(msg).encode())
            except zmq.Again:
                return f"nobody took the messages within {ZMQ_LINGER_MS} ms ({len(messages) - i} not sent)"
        return None
    except zmq.ZMQError as exc:
        return str(exc)
    finally:
        sock.close()
        ctx.term()  # waits (LINGER at most) until the queued messages are delivered


def send_tcp(address: str | None, text: str) -> tuple[bool, str]:
    """One connection to ``host:port``, the text sent, closed."""
    if not address or ":" not in address:
        return False, f"no host:port in info_type ({address!r})"
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=TCP_TIMEOUT) as sock:
            sock.sendall(text.encode())
        return True, ""
    except (OSError, ValueError) as exc:
        return False, str(exc)


def switch_nodes(nodes: NodeCommands) -> list[str]:
    """Greta's HALT/WAKEUP (CHECK when neither), or each command fed the node names on stdin."""
    failures = []
    if nodes.internal:
        messages = []
        if nodes.halt:
            messages.append({"cmd": "HALT", "nodes": nodes.halt})
        if nodes.wakeup:
            messages.append({"cmd": "WAKEUP", "nodes": nodes.wakeup})
        why = send_zmq(nodes.greta, messages or [{"cmd": "CHECK"}])
        if why:
            failures.append(f"greta at {nodes.greta}: {why}")
            log.error("cannot notify greta at %s: %s", nodes.greta, why)
        return failures
    for what, cmd, names in (("halt", nodes.sleep_cmd, nodes.halt), ("wake up", nodes.wakeup_cmd, nodes.wakeup)):
        if names:
            why = feed_stdin(cmd, names, nodes.timeout)
            if why:
                failures.append(f"{what} command {cmd!r}: {why}")
                log.error("cannot %s nodes %s with %r: %s", what, ", ".join(names), cmd, why)
    return failures


def feed_stdin(cmd: str, lines: list[str], timeout: float) -> str | None:
    """Run ``cmd`` (shell) with one line per node on its stdin; None when it exits 0 in time."""
    if not cmd:
        return "no command configured"
    try:
        run = run_shell(cmd, timeout, "".join(f"{x}\n" for x in lines))
    except OSError as exc:
        return str(exc)
    if run.code is None:
        return f"timed out after {timeout:g}s"
    if run.code != 0:
        return f"exit status {run.code}: {run.stderr.strip()[-200:]}"
    return None
