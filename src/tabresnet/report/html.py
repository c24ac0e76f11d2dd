"""Assemble the report: one self-contained HTML page, every image a data URI.

No external resources and no JavaScript: the page opens offline, in a mail
attachment or a CI artifact viewer. Every piece of text that comes from the
run directory goes through :func:`esc`.

Each section is built by a function that returns HTML; when it fails,
:func:`section` puts a "not available" note with the reason in its place, so a
run directory with missing or broken files still gives a report.

>>> print(table(["metric", "test"], [["rmse", 0.5], ["r2", "<1"]]))
<table><thead><tr><th>metric</th><th>test</th></tr></thead><tbody>
<tr><td>rmse</td><td class="num">0.5</td></tr>
<tr><td>r2</td><td>&lt;1</td></tr></tbody></table>
"""

from __future__ import annotations

import base64
import datetime as _dt
import html as _html
import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["esc", "fmt", "image", "not_available", "page", "section", "table"]


def esc(value: Any) -> str:
    """HTML-escape ``str(value)``, quotes included.

    >>> esc('<b a="1">')
    '&lt;b a=&quot;1&quot;&gt;'
    """
    return _html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A number with four significant digits; other values as text.

    >>> fmt(3.14159265), fmt(12345678), fmt(1e-7), fmt(True), fmt(None)
    ('3.142', '12,345,678', '1e-07', 'True', '')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table(header: Sequence[Any], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    """An HTML table; numbers are formatted by :func:`fmt` and right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for v in row:
            if _is_number(v):
                cells.append(f'<td class="num">{esc(fmt(v))}</td>')
            else:
                cells.append(f"<td>{esc(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    attr = f' class="{esc(cls)}"' if cls else ""
    return (
        f"<table{attr}><thead><tr>{head}</tr></thead><tbody>\n"
        + "\n".join(body)
        + "</tbody></table>"
    )


def image(png: bytes, alt: str, caption: str = "", cls: str = "") -> str:
    """A ``<figure>`` with the PNG embedded as a base64 data URI."""
    from .plots import png_size

    width, height = png_size(png)
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    attr = f' class="{esc(cls)}"' if cls else ""
    return (
        f'<figure{attr}><img src="data:image/png;base64,{data}" alt="{esc(alt)}" '
        f'width="{width}" height="{height}">{cap}</figure>'
    )


def not_available(reason: str) -> str:
    """The note shown in place of a section or figure that cannot be drawn."""
    return f'<p class="na"><strong>Not available:</strong> {esc(reason)}</p>'


def section(anchor: str, title: str, build: Callable[[], str]) -> str:
    """A ``<section>``: ``build()``'s HTML, or a "not available" note with its error.

    >>> def broken():
    ...     raise FileNotFoundError("history.csv is missing")
    >>> "Not available" in section("training", "Training", broken)
    True
    """
    from .rundir import Unavailable

    try:
        body = build()
    except Unavailable as exc:
        body = not_available(str(exc))
    except Exception as exc:  # a report must not fail because one section does
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        body = not_available(reason)
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  margin: 0; background: #f4f5f7; color: #1d2330; font-size: 15px; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: #fff;
  box-shadow: 0 0 12px rgba(0,0,0,.06); }
h1 { font-size: 26px; margin: 4px 0 2px; }
h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 2px solid #dde1e8; }
h3 { font-size: 16px; margin: 22px 0 8px; }
.sub { color: #5a6475; margin: 0 0 12px; }
nav { margin: 14px 0 6px; font-size: 14px; }
nav a { margin-right: 14px; color: #2456a6; text-decoration: none; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid #dde1e8; border-radius: 6px; padding: 10px 16px; min-width: 130px; }
.card .v { font-size: 22px; font-weight: 600; }
.card .k { font-size: 13px; color: #5a6475; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { border: 1px solid #dde1e8; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 10px 0 20px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption, .caption { font-size: 13px; color: #5a6475; margin-top: 4px; }
.scroll { max-height: 720px; overflow: auto; border: 1px solid #dde1e8; padding: 6px; }
.scroll img { max-width: none; }
pre { background: #f6f8fa; border: 1px solid #dde1e8; padding: 10px; overflow: auto;
  max-height: 480px; font-size: 12.5px; line-height: 1.35; }
details summary { cursor: pointer; color: #2456a6; margin: 6px 0; }
.na { color: #7a4b00; background: #fff7e6; border: 1px solid #f3d9a4; border-radius: 4px;
  padding: 8px 12px; }
.wide { overflow-x: auto; max-width: 100%; }
.wide table { margin-bottom: 4px; }
.cols { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
footer { margin-top: 40px; font-size: 12px; color: #5a6475; }
"""


def page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], cards: str,
         sections: Sequence[str]) -> str:
    """The whole HTML document."""
    links = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav)
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{esc(title)}</h1>
<p class="sub">{esc(subtitle)}</p>
<nav>{links}</nav>
{cards}
{body}
<footer>Written by tabresnet on {esc(stamp)}.</footer>
</main>
</body>
</html>
"""

