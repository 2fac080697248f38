"""Rendering: a report's blocks (headings, paragraphs, lists, figures, tables) to Markdown and to one
self-contained HTML page (figures embedded as PNG data)."""

from __future__ import annotations

import base64
import html
import io
import math
import re
from typing import Any

import pandas as pd

from ..nb.tables import to_markdown
from .analysis import _interval_text
from .report_config import method_label


def _methods(table: pd.DataFrame) -> Any:
    return table["method"].map(method_label) if "method" in table.columns else ""


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def _fmt_intervals(table: pd.DataFrame, what: str) -> pd.DataFrame:
    return pd.DataFrame({"dataset": table["dataset"], "N": table["shots"], "method": _methods(table),
                         "model": table["model"], "seeds": table["seeds"],
                         f"{what}, mean [95 % CI]": [_interval_text(r.mean, r.low, r.high)
                                                    for r in table.itertuples()]})


def _fmt_gaps(gaps: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"dataset": gaps["dataset"], "N": gaps["shots"], "method": _methods(gaps),
                         "compressed": gaps["model"], "pairs": gaps["pairs"],
                         "gap [95 % CI]": [_interval_text(r.gap, r.gap_low, r.gap_high)
                                           for r in gaps.itertuples()],
                         "half-width": gaps["halfwidth"].round(2), "min. detectable (80 %)": gaps["mde"].round(2),
                         "test set": gaps["test_noise"].map(lambda t: "counted" if t == "counted" else "not counted"),
                         "verdict": gaps["verdict"]})


def _fmt_calibration(cal: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"dataset": cal["dataset"], "N": cal["shots"], "method": _methods(cal), "model": cal["model"],
                         "seeds": cal["seeds"],
                         "ECE (points)": (100 * cal["ece"]).round(2),
                         "ECE after T-scaling": (100 * cal["ece_temp_scaled"]).round(2),
                         "mean T": cal["temperature"].round(3), "NLL": cal["nll"].round(3),
                         "NLL after T-scaling": cal["nll_temp_scaled"].round(3)})


def _provenance_table(models: dict[str, dict[str, Any]]) -> pd.DataFrame:
    keys = ("substitute", "measured_sparsity", "bits", "canvas", "num_classes", "source", "sha256")
    rows = [{"model": name, **{k: prov.get(k) for k in keys if k in prov}} for name, prov in models.items()]
    return pd.DataFrame(rows)


def _markdown(blocks: list[tuple[str, Any]]) -> str:
    out = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + value)
        elif kind == "p":
            out.append(value)
        elif kind == "ul":
            out.append("\n".join(f"- {v}" for v in value))
        elif kind == "fig":
            out.append(f"![{value}](figures/{value}.png)")
        elif kind == "table":
            out.append(to_markdown(value).rstrip() if not value.empty else "_none_")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def _html(blocks: list[tuple[str, Any]], pngs: dict[str, bytes], *, title: str) -> str:
    body = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(value)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(value)}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(v)}</li>" for v in value) + "</ul>")
        elif kind == "fig" and value in pngs:
            data = base64.b64encode(pngs[value]).decode()
            body.append(f'<img alt="{value}" src="data:image/png;base64,{data}">')
        elif kind == "table":
            body.append(value.to_html(index=False, na_rep="", border=0) if not value.empty else "<p><em>none</em></p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{padding:3px 8px;"
             "border-bottom:1px solid #ddd;text-align:left}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
