"""HTML fragments for the report notebook: escaped tables, inline figures, notes, lists and folds, one look for all.

They live here, not in the notebook, so that the notebook stays thin; the
notebook passes what they return to ``show``.
"""

from __future__ import annotations

import base64
import html
import io
import re

import pandas as pd

# The page's content is at most this wide (build.REPORT_CSS: main's max-width less its padding), and figures
# are saved at FIGURE_DPI: a figure is never wider than the column, so the browser shows it at its natural
# size and a font of N points is N * FIGURE_DPI / 72 pixels on screen.
CONTENT_WIDTH_PX = 1064
FIGURE_DPI = 110


def show(*parts: str):
    """Display HTML fragments as one notebook output."""
    from IPython.display import HTML, display

    display(HTML("\n".join(p for p in parts if p)))


def note(text: str, kind: str = "note") -> str:
    """A paragraph of generated text; kind "missing" marks what the data does not (yet) cover."""
    return f'<p class="note {html.escape(kind)}">{_inline_code(html.escape(text))}</p>'


def missing(text: str) -> str:
    return note(text, "missing")


def paragraph(text: str) -> str:
    """A plain paragraph of generated text."""
    return f"<p>{_inline_code(html.escape(text))}</p>"


def bullets(items, ordered=False) -> str:
    items = [t for t in items if t]
    if not items:
        return ""
    tag = "ol" if ordered else "ul"
    return f"<{tag}>" + "".join(f"<li>{_inline_code(html.escape(t))}</li>" for t in items) + f"</{tag}>"


def _inline_code(escaped: str) -> str:
    # `command` in generated sentences -> <code>command</code> (text is already escaped).
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


# A sentence ends at a full stop, question or exclamation mark followed by a space and a capital letter or digit;
# "e.g. x" and "p2 k9. The" are handled by requiring that capital.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(“\"])")


def sentences(text: str) -> list[str]:
    """A paragraph as its sentences, so that a fold can list them one per line instead of one block."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(str(text).split())) if s.strip()]


def details(summary: str, *parts: str, element_id: str | None = None, summary_html: bool = False) -> str:
    """A folded block: ``summary`` is always shown, ``parts`` (HTML) only when the reader opens it.
    Folded content does not lengthen the page, so the full evidence can stay in the report."""
    body = "\n".join(p for p in parts if p)
    if not body:
        return ""
    ident = f' id="{html.escape(element_id, quote=True)}"' if element_id else ""
    head = summary if summary_html else html.escape(summary)
    return f'<details class="fold"{ident}><summary>{head}</summary>\n{body}\n</details>'


def _format_cell(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def header_cell(name) -> str:
    """A column header that wraps only at spaces: a word with a hyphen, slash or other mark is kept whole."""
    words = str(name).split(" ")
    return " ".join(f'<span class="nw">{html.escape(w)}</span>' if re.search(r"[^\w]", w) else html.escape(w)
                    for w in words)


def table(df: pd.DataFrame, *, table_id: str | None = None, caption: str | None = None,
          empty: str = "No rows.") -> str:
    """A DataFrame as an escaped HTML table inside a horizontally scrolling box (or a note if empty)."""
    if df is None or df.empty:
        return missing(empty)
    ident = f' id="{html.escape(table_id, quote=True)}"' if table_id else ""
    head = "".join(f"<th>{header_cell(c)}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_format_cell(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False, name=None))
    cap = f'<p class="caption">{_inline_code(html.escape(caption))}</p>' if caption else ""
    return (f'{cap}<div class="table-scroll"><table class="report-table"{ident}>'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


def figure_png(fig, max_width_px: int = CONTENT_WIDTH_PX) -> bytes:
    """``fig`` as PNG bytes at FIGURE_DPI, never wider than ``max_width_px``: a figure that comes out wider
    (its legend or labels outside the axes) is redrawn narrower at the same DPI, so its text keeps its size
    and only the plotting area shrinks."""
    from PIL import Image

    for _ in range(4):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
        width = Image.open(io.BytesIO(buf.getvalue())).size[0]
        if width <= max_width_px:
            break
        w, h = fig.get_size_inches()
        fig.set_size_inches(w * (max_width_px - 4) / width, h)
        if fig.get_layout_engine() is None:
            fig.tight_layout()
    return buf.getvalue()


def figure(fig, alt: str, caption: str | None = None, element_id: str | None = None) -> str:
    """A matplotlib figure as an inline PNG shown at its natural size (closed afterwards, so nothing else
    displays it)."""
    import matplotlib.pyplot as plt

    png = figure_png(fig)
    plt.close(fig)
    data = base64.b64encode(png).decode("ascii")
    ident = f' id="{html.escape(element_id, quote=True)}"' if element_id else ""
    cap = f"<figcaption>{_inline_code(html.escape(caption))}</figcaption>" if caption else ""
    return (f'<figure class="report-figure"{ident}><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(alt, quote=True)}">{cap}</figure>')


def verdict_css(verdict: str) -> str:
    return "verdict-" + re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")


def verdict_lines(lines: list[dict]) -> str:
    """The first screen's claims, one line each (``verdicts.headlines``): the verdict (linking to its
    evidence), the claim, its effects with their 95% intervals, and the regime in a few words."""
    items = []
    for i, line in enumerate(lines, start=1):
        effects = "; ".join(html.escape(e) for e in line["effects"])
        notes = "".join(f" {html.escape(n)}" for n in line["notes"])
        items.append(
            f'<li class="verdict-line {verdict_css(line["verdict"])}" id="verdict-{html.escape(line["id"])}">'
            f'<a class="verdict-word" href="#{html.escape(line["details"], quote=True)}">'
            f'{html.escape(line["verdict"])}</a> '
            f'<span class="claim-text">{html.escape(line["claim"])}</span> '
            + (f'<span class="effect">{effects}.</span>' if effects else "")
            + notes
            + (f' <span class="regime">({html.escape(line["regime"])})</span>' if line["regime"] else "")
            + "</li>")
    return f'<ol class="verdict-lines" id="verdicts">{"".join(items)}</ol>'
