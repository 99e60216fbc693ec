"""Reading a JSON file with errors that name the file (and the line) at fault."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from oarsched.errors import OarschedError


def read_json_file(path: str | os.PathLike[str], error: type[OarschedError]) -> Any:
    """The parsed content of ``path``; an unreadable file or bad JSON raises ``error``."""
    source = os.fspath(path)
    try:
        return json.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{source}: cannot read it: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{source}, line {exc.lineno}: not JSON: {exc.msg}") from None
