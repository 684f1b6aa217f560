"""Every pipeline step writes its numbers twice: JSON for code and tests, a Markdown table for people."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def fmt_diff(d: dict[str, Any]) -> str:
    """A paired difference (`scoring.paired_bootstrap`): "+0.021 [-0.01, +0.05]"."""
    return f"{d['diff']:+.3f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"


def write_report(
    json_path: Path,
    data: Any,
    title: str,
    intro: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    after: Sequence[str] = (),
) -> None:
    """`<name>.json` with `data`, and `<name>.md`: title, intro, one table, then `after` lines."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    lines = [f"# {title}", "", intro, "", *markdown_table(header, rows), *after, ""]
    json_path.with_suffix(".md").write_text("\n".join(lines))
