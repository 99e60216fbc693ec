"""``oarsched-kao``: the command Almighty runs, with or without a resident kao server.

``oarsched-kao [--server SOCKET] [--now SEC]``.  Without ``--server`` the round
runs in this process (:func:`oarsched.oar.kao.main`).  With it, the round is
asked of the resident server listening on the Unix socket ``SOCKET``
(``oarsched kao-server``, :mod:`oarsched.oar.kao_server`), whose libraries and
database schema are already loaded: this process then imports only the
standard library, sends its arguments, environment and working directory, and
prints what the round printed and exits with its status, as if it had run it.

When the server cannot run the round (no socket, nobody listening, a server of
other code, the connection lost before the answer), the round runs here
instead and the reason is logged: a missing server makes rounds slower, never
skipped.  A round lost with its connection is safe to run again: it wrote all
of its rows or none, and a launched job is ``toLaunch`` already.

The wire format, shared with the server: each message is a 4-byte big-endian
length, then that many bytes of UTF-8 JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys

import oarsched

PROTOCOL = 1
"""Version of the request and answer shapes below; a server of another version refuses the request."""

MAX_MESSAGE = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class ServerUnavailable(Exception):
    """The resident server did not run the round (the message says why); run it in this process."""


def send_message(sock: socket.socket, payload: dict) -> None:
    data = json.dumps(payload).encode("utf-8")
    sock.sendall(_LENGTH.pack(len(data)) + data)


def recv_message(sock: socket.socket) -> dict:
    """One message; :class:`ConnectionError` when the peer closes before a whole one arrived."""
    (size,) = _LENGTH.unpack(_recv_exactly(sock, _LENGTH.size))
    if size > MAX_MESSAGE:
        raise ConnectionError(f"message of {size} bytes (at most {MAX_MESSAGE})")
    value = json.loads(_recv_exactly(sock, size).decode("utf-8"))
    if not isinstance(value, dict):
        raise ConnectionError("message is not a JSON object")
    return value


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed by the peer")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def package_dir() -> str:
    """The installed package this command belongs to: a server must run the same code."""
    return os.path.dirname(os.path.abspath(oarsched.__file__ or ""))


def round_request(argv: list[str]) -> dict:
    return {"protocol": PROTOCOL, "package": package_dir(), "argv": argv, "env": dict(os.environ),
            "cwd": os.getcwd()}


CONNECT_TIMEOUT = 2.0
"""Seconds to connect; once connected the client waits for the round however long it takes (as Almighty
waits for kao)."""


def ask_server(path: str, argv: list[str]) -> dict:
    """The server's answer (``exit``, ``stdout``, ``stderr``) to running kao with ``argv``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(path)
        except OSError as exc:
            raise ServerUnavailable(f"no kao server on {path}: {exc.strerror or exc}") from None
        sock.settimeout(None)
        try:
            send_message(sock, round_request(argv))
            answer = recv_message(sock)
        except (OSError, ValueError) as exc:
            raise ServerUnavailable(f"kao server on {path} gave no answer: {exc}") from None
    finally:
        sock.close()
    if "refused" in answer:
        raise ServerUnavailable(f"kao server on {path} refused the round: {answer['refused']}")
    if not isinstance(answer.get("exit"), int):
        raise ServerUnavailable(f"kao server on {path} gave an answer without an exit status")
    return answer


def split_server(argv: list[str]) -> tuple[str | None, list[str]]:
    """``--server SOCKET`` (or ``--server=SOCKET``) taken out of ``argv``; the rest is kao's own."""
    parser = argparse.ArgumentParser(prog="oarsched-kao", add_help=False, allow_abbrev=False)
    parser.add_argument("--server", metavar="SOCKET")
    known, rest = parser.parse_known_args(argv)
    return known.server, rest


def main(argv: list[str] | None = None) -> int:
    server, rest = split_server(sys.argv[1:] if argv is None else argv)
    unavailable = None
    if server is not None:
        try:
            answer = ask_server(server, rest)
        except ServerUnavailable as exc:
            unavailable = str(exc)
        else:
            sys.stdout.write(answer.get("stdout", ""))
            sys.stderr.write(answer.get("stderr", ""))
            return int(answer["exit"])
    from oarsched.oar.kao import main as kao_main

    return kao_main(rest, server_unavailable=unavailable)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
