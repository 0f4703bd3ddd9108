"""Reading a project's YAML files (strategy file, conf/config.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def load_yaml(path: Path, shown: str) -> Any:
    """The file's data, or a usage error of one line naming the file (and line)."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise pytest.UsageError(f"fleet: {shown}: not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise pytest.UsageError(f"fleet: {shown}: cannot be read: {exc}") from None
