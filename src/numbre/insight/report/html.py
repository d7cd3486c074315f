"""The report page: one HTML file with every image inside it as a base64 data URI.

No external stylesheet, script, font or image: the file can be mailed, attached to an issue or
opened offline and looks the same.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       max-width: 1180px; margin: 0 auto; padding: 1.5em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
nav { display: flex; flex-wrap: wrap; gap: 0.2em 1em; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #eee; text-align: left; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
.facts th { color: #555; font-weight: normal; }
.note { background: #fff8e1; border-left: 4px solid #f9a825; padding: 0.5em 0.8em; }
code { font-size: 0.92em; }
"""


@dataclass(frozen=True)
class Section:
    """One part of the report: a heading, a sentence, a figure and/or a table, or a note instead."""

    key: str  # anchor and PNG file stem
    title: str
    text: str = ""  # plain text, escaped when rendered; `backticks` mark code
    png: bytes | None = None
    table: str = ""  # trusted HTML from `html_table`
    note: str = ""  # plain text shown instead of what is missing


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool],
               css_class: str = "") -> str:
    """A table with escaped cells; numeric columns are right-aligned."""

    def cell(tag: str, value: object, is_number: bool) -> str:
        return f'<{tag}{" class=number" if is_number else ""}>{escape(str(value))}</{tag}>'

    head = "".join(cell("th", name, flag) for name, flag in zip(header, numeric, strict=True))
    body = "".join("<tr>" + "".join(cell("td", value, flag) for value, flag in zip(row, numeric, strict=True))
                   + "</tr>" for row in rows)
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def prose(text: str) -> str:
    """Escaped text in which `backticks` mark commands, shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_page(title: str, facts: Sequence[tuple[str, str]], sections: Sequence[Section]) -> str:
    """The whole page as a string."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{escape(title)}</h1>",
             '<table class="facts"><tbody>'
             + "".join(f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in facts)
             + "</tbody></table>",
             "<nav>" + "".join(f'<a href="#{section.key}">{escape(section.title)}</a>'
                               for section in sections) + "</nav>"]
    for section in sections:
        parts.append(f'<section id="{section.key}"><h2>{escape(section.title)}</h2>')
        if section.text:
            parts.append(f"<p>{prose(section.text)}</p>")
        if section.note:
            parts.append(f'<p class="note">{prose(section.note)}</p>')
        if section.png is not None:
            parts.append(f'<img src="{data_uri(section.png)}" alt="{escape(section.title)}">')
        parts.append(section.table)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
