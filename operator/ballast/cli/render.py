"""Output for people and for programs: aligned tables (coloured on a terminal), JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

PHASE_COLOURS = {"Promoted": "green", "RolledBack": "red", "Failed": "red", "Blocked": "yellow",
                 "AwaitingApproval": "yellow", "Progressing": "cyan", "Promoting": "cyan", "RollingBack": "red",
                 "Fail": "red", "Pass": "green", "Inconclusive": "yellow"}

output_option = click.option("-o", "--output", type=click.Choice(["table", "json", "csv"]), default="table",
                             show_default=True, help="Output format.")
no_color_option = click.option("--no-color", is_flag=True, envvar="NO_COLOR",
                               help="Plain text even on a terminal (also NO_COLOR=1).")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], colour: bool) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    headers = [c.upper().replace("_", " ") for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        parts = []
        for text, width in zip(row, widths, strict=True):
            padded = text.ljust(width)
            parts.append(click.style(padded, fg=PHASE_COLOURS[text]) if colour and text in PHASE_COLOURS else padded)
        lines.append("   ".join(parts).rstrip())
    return "\n".join(lines)


def emit(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], output: str, no_color: bool) -> None:
    """Print rows in the chosen format; colour only on a terminal and only when allowed."""
    if output == "json":
        click.echo(json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=2, default=str))
    elif output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if row.get(c) is None else row.get(c) for c in columns] for row in rows])
        click.echo(buffer.getvalue(), nl=False)
    elif rows:
        click.echo(table(rows, columns, colour=not no_color and sys.stdout.isatty()))
    else:
        click.echo("Nothing to show.")
