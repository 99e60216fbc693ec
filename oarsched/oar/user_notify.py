"""Users' own notifications (``oarsub --notify``): a mail or a command when their job changes state.

``jobs.notify`` holds ``[TAG,...]mail:ADDRESS`` or ``[TAG,...]exec:COMMAND``
(the tag list is optional; without it every tag counts).  When the round moves
a job to a state with a tag (Error: ``ERROR``, Running: ``RUNNING``...), OAR3's
``notify_user`` writes an event and mails ``ADDRESS`` through
``MAIL_SMTP_SERVER`` (from ``MAIL_SENDER``), or runs ``COMMAND`` as the job's
user on its submission host (``OPENSSH_CMD`` to the host of ``jobs.info_type``,
within ``OAR_SSH_CONNECTION_TIMEOUT``) with the job id, name, tag and message.

The round decides and writes the mail events in its transaction
(:func:`plan`); the mails and commands are sent only after the commit
(:func:`deliver`), after Almighty and the bipbip commander were told.  A
failure is logged, never fatal; a command's outcome is an event
(``USER_EXEC_NOTIFICATION`` or ``..._ERROR``) written afterwards.
"""
from __future__ import annotations

import logging
import re
import shlex
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from oarsched.oar.shell import run_shell

if TYPE_CHECKING:
    from email.message import EmailMessage

log = logging.getLogger("oarsched.kao.notify")

ALL_TAGS = ("RUNNING", "END", "ERROR", "INFO", "SUSPENDED", "RESUMING")
"""Tags a notification without a ``[...]`` list is sent for."""

ERROR_TEXT = "Job stopped abnormally or an OAR error occured."
RUNNING_TEXT = "Job is running."

_TAGS_RE = re.compile(r"^\s*\[\s*(.+)\s*\]\s*(?:mail|exec)\s*:.+$")
_MAIL_RE = re.compile(r"^.*mail\s*:(.+)$")
_EXEC_RE = re.compile(r"^.*exec\s*:([a-zA-Z0-9_./ -]+)$")
"""A command is words of letters, digits, ``_./-`` (nothing a shell interprets)."""

SMTP_TIMEOUT = 30.0
MAX_PARALLEL_COMMANDS = 8


@dataclass(frozen=True)
class UserNotification:
    """One mail or command to send once the round is committed."""

    job_id: int
    kind: str
    """``mail`` or ``exec``."""
    target: str
    """The address, or the command (words)."""
    tag: str
    text: str
    job_name: str | None
    user: str
    host: str | None
    """The submission host (``exec``), from ``jobs.info_type``."""


def parse(notify: str | None, tag: str) -> tuple[str, str] | None:
    """``(kind, target)`` when ``notify`` asks for ``tag``, else None (OAR3's reading of ``jobs.notify``:
    the tags are split on commas as written; a mail address wins over a command)."""
    if not notify:
        return None
    m = _TAGS_RE.match(notify)
    tags = m.group(1).split(",") if m else list(ALL_TAGS)
    if tag not in tags:
        return None
    if m := _MAIL_RE.match(notify):
        return "mail", m.group(1)
    if m := _EXEC_RE.match(notify):
        return "exec", m.group(1)
    return None


def plan(job_id: int, notify: str | None, tag: str, text: str, *, name: str | None, user: str,
         info_type: str | None, add_event: Callable[[str, int, str], None]) -> UserNotification | None:
    """What to send for a job moved to ``tag``'s state; the mail event is written now (``add_event``),
    as OAR3 writes it before sending.  None when the job asks for nothing (or has no host to run on)."""
    asked = parse(notify, tag)
    if asked is None:
        return None
    kind, target = asked
    host = info_type.split(":")[0] if info_type else None
    if kind == "mail":
        add_event("USER_MAIL_NOTIFICATION", job_id, f"Send a mail to {target}: state: {tag}")
    elif not host:  # OAR3 crashes on None.split
        log.warning("job %s: no submission host (info_type NULL) to run its notification command on", job_id)
        return None
    return UserNotification(job_id=job_id, kind=kind, target=target, tag=tag, text=text, job_name=name,
                            user=user, host=host)


@dataclass(frozen=True)
class Delivery:
    """How to send (from oar.conf)."""

    smtp_server: str | None
    sender: str | None
    ssh: str
    ssh_timeout: float
    hostname: str

    @classmethod
    def from_config(cls, config) -> Delivery:
        def text(key: str) -> str | None:
            value = config.get(key)
            return None if value is None or str(value) == "" else str(value)

        return cls(smtp_server=text("MAIL_SMTP_SERVER"), sender=text("MAIL_SENDER"),
                   ssh=config.get_str("OPENSSH_CMD"), ssh_timeout=config.get_float("OAR_SSH_CONNECTION_TIMEOUT"),
                   hostname=socket.gethostname())


@dataclass(frozen=True)
class ExecOutcome:
    """A command's outcome: the event to write after the round."""

    job_id: int
    event: str
    description: str


def deliver(notes: list[UserNotification], how: Delivery) -> tuple[list[str], list[ExecOutcome]]:
    """Send the mails and run the commands: (failures, logged; the commands' events to write)."""
    failures: list[str] = []
    for note in notes:
        if note.kind == "mail":
            why = send_mail(note, how)
            if why:
                failures.append(f"job {note.job_id}: mail to {note.target}: {why}")
                log.error("job %s: cannot mail %s: %s", note.job_id, note.target, why)
    commands = [n for n in notes if n.kind == "exec"]
    if not commands:
        return failures, []
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_COMMANDS, len(commands))) as pool:
        outcomes = list(pool.map(lambda n: run_command(n, how), commands))
    for outcome in outcomes:
        if outcome.event.endswith("_ERROR"):
            failures.append(f"job {outcome.job_id}: {outcome.description}")
            log.error("job %s: %s", outcome.job_id, outcome.description)
    return failures, outcomes


def mail_message(note: UserNotification, how: Delivery) -> EmailMessage:
    """OAR3's mail: subject ``*OAR* [TAG] (name) on SERVER`` (nothing between the spaces without a name)."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg.set_content(note.text)
    name = f"({note.job_name})" if note.job_name else ""
    msg["Subject"] = f"*OAR* [{note.tag}] {name} on {how.hostname}"
    msg["From"] = how.sender or ""
    msg["To"] = note.target
    return msg


def send_mail(note: UserNotification, how: Delivery) -> str | None:
    """One mail through ``MAIL_SMTP_SERVER`` (``host`` or ``host:port``); None when sent, else why not."""
    import smtplib  # imported when a mail is due: most rounds send none

    if not how.smtp_server or not how.sender:
        return "MAIL_SMTP_SERVER and MAIL_SENDER must be set in oar.conf to send mail"
    try:
        with smtplib.SMTP(how.smtp_server, timeout=SMTP_TIMEOUT) as smtp:
            smtp.send_message(mail_message(note, how))
    except (OSError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def command_line(note: UserNotification, how: Delivery) -> str:
    """``OPENSSH_CMD -x -T HOST OARDO_BECOME_USER=USER oardodo COMMAND ID NAME TAG "TEXT"`` (output discarded).

    Unlike OAR3, the remote command is quoted as a whole and each argument in it, so that a job name
    runs nothing on the server or the node, and the text reaches the command as one argument (as in OAR2).
    """
    remote = " ".join([f"OARDO_BECOME_USER={shlex.quote(note.user)}", "oardodo", note.target.strip(),
                       str(note.job_id), shlex.quote(str(note.job_name)), note.tag, shlex.quote(note.text)])
    return f"{how.ssh} -x -T {shlex.quote(note.host or '')} {shlex.quote(remote)} > /dev/null 2>&1"


def run_command(note: UserNotification, how: Delivery) -> ExecOutcome:
    """Run the notification command."""
    cmd = command_line(note, how)
    try:
        code = run_shell(cmd, how.ssh_timeout).code
    except OSError as exc:
        return ExecOutcome(note.job_id, "USER_EXEC_NOTIFICATION_ERROR", f"User notification failed: {exc} (cmd: {cmd})")
    if code is None:
        return ExecOutcome(note.job_id, "USER_EXEC_NOTIFICATION_ERROR",
                           f"User notification failed: ssh timeout (cmd: {cmd})")
    if code != 0:
        return ExecOutcome(note.job_id, "USER_EXEC_NOTIFICATION_ERROR",
                           f"User notification failed: exit status {code} (cmd: {cmd})")
    return ExecOutcome(note.job_id, "USER_EXEC_NOTIFICATION", f"Launched user notification command : {cmd}")
