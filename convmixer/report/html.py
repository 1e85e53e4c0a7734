"""HTML fragments for the report notebook: escaped tables, inline figures, notes and lists, one look for all.

They live here, not in the notebook, so that the notebook stays thin; the
notebook passes what they return to ``show``.
"""

from __future__ import annotations

import base64
import html
import io
import re

import pandas as pd


def show(*parts: str):
    """Display HTML fragments as one notebook output."""
    from IPython.display import HTML, display

    display(HTML("\n".join(parts)))


def note(text: str, kind: str = "note") -> str:
    """A paragraph of generated text; kind "missing" marks what the data does not (yet) cover."""
    return f'<p class="note {html.escape(kind)}">{html.escape(text)}</p>'


def missing(text: str) -> str:
    return note(text, "missing")


def paragraph(text: str) -> str:
    """A plain paragraph of generated text."""
    return f"<p>{html.escape(text)}</p>"


def bullets(items, ordered=False) -> str:
    tag = "ol" if ordered else "ul"
    return f"<{tag}>" + "".join(f"<li>{_inline_code(html.escape(t))}</li>" for t in items) + f"</{tag}>"


def _inline_code(escaped: str) -> str:
    # `command` in generated sentences -> <code>command</code> (text is already escaped).
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _format_cell(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def table(df: pd.DataFrame, *, table_id: str | None = None, caption: str | None = None,
          empty: str = "No rows.") -> str:
    """A DataFrame as an escaped HTML table inside a horizontally scrolling box (or a note if empty)."""
    if df is None or df.empty:
        return missing(empty)
    body = df.map(_format_cell) if hasattr(df, "map") else df.applymap(_format_cell)
    out = body.to_html(index=False, escape=True, border=0, classes="report-table", table_id=table_id)
    cap = f'<p class="caption">{html.escape(caption)}</p>' if caption else ""
    return f'{cap}<div class="table-scroll">{out}</div>'


def figure(fig, alt: str, caption: str | None = None) -> str:
    """A matplotlib figure as an inline PNG (closed afterwards, so nothing else displays it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure class="report-figure"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(alt, quote=True)}">{cap}</figure>')


def verdict_table(verdicts: pd.DataFrame) -> str:
    """Claims with their verdicts; each verdict links to the figure or table that carries it."""
    rows = []
    for i, v in enumerate(verdicts.itertuples(index=False), start=1):
        css = "verdict-" + re.sub(r"[^a-z]+", "-", v.verdict.lower()).strip("-")
        evidence = "<br>".join(html.escape(line) for line in str(v.evidence).splitlines())
        rows.append(
            f"<tr><td>{i}</td><td>{html.escape(v.claim)}</td>"
            f'<td class="{css}"><a href="#{html.escape(v.anchor, quote=True)}">{html.escape(v.verdict)}</a></td>'
            f"<td>{evidence}</td></tr>"
        )
    head = "<tr><th>#</th><th>claim</th><th>verdict</th><th>evidence</th></tr>"
    return (f'<div class="table-scroll"><table class="report-table" id="verdict-table">'
            f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>")


