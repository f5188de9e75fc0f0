"""The HTML report: one self-contained page, plotly.js inline, that works offline.

What a researcher looks at after a sweep, top to bottom: a summary of the run; the best
points (the table ``rangeexpr report`` prints, with each point's command); then for
each metric, a plot against each axis, every point one marker (hovering shows its values
and command), with the mean and standard deviation at each axis value, one line per
value of a categorical axis (the x axis logarithmic for logspace and geomspace axes); a
heat map of the metric's mean over two axes; and last a parallel-coordinates view of all
axes and metrics. The ``--over`` axis (a seed, say) is what the means average over, so it
gets no plot of its own.

plotly is an optional extra (``pip install 'rangeexpr[report]'``); it draws every plot,
this module only chooses them. It is imported through ``importlib`` because it ships no
type information.
"""

from __future__ import annotations

import html
import importlib
import math
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from ._errors import RangeExprError
from ._report import Array, JobRecords, Table, cell_text, factorize, segment_stats

__all__ = ["MAX_LINES", "MAX_MARKERS", "require_plotly", "write_html"]

MAX_MARKERS = 5000  # more points than this: the plots show the means only, not each point
MAX_LINES = 50_000  # more than this: no parallel-coordinates view (too heavy for a page)
MAX_CATEGORIES = 10  # a text axis with more values is not split into lines
HOVER_COMMAND = 300  # characters of a command shown on hover
INSTALL_HINT = "pip install 'rangeexpr[report]'"


def require_plotly() -> Any:
    """The ``plotly.graph_objects`` module, or RangeExprError saying what to install."""
    try:
        return importlib.import_module("plotly.graph_objects")
    except ImportError:
        raise RangeExprError(
            f"--format html needs plotly, which is not installed: {INSTALL_HINT}"
        ) from None


def write_html(
    records: JobRecords,
    table: Table,
    out: IO[str],
    *,
    over: str | None = None,
    by: Sequence[str] = (),
    sort: str | None = None,
) -> None:
    """Write the report page for ``records``; ``table`` is the (sorted, cut) table to show.

    ``sort`` is the ``--sort`` text as given (e.g. ``-acc``), for the captions and the
    colour of the parallel coordinates.
    """
    go = require_plotly()
    plotly_js: str = importlib.import_module("plotly.offline").get_plotlyjs()

    page = _Page(records, go, over)
    parts = [_summary(records), _best(records, table, sort)]
    for metric in records.metrics:
        parts.append(f"<h2>{html.escape(metric)}</h2>")
        parts.append(page.metric_section(metric, by))
    if records.metrics or len(page.axes) > 1:
        parts.append("<h2>All axes</h2>")
        parts.append(page.parallel(_sort_metric(records, sort)))
    title = "rangeexpr report: " + ", ".join(p.name for p in records.logs)
    out.write(
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script>{plotly_js}</script>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
    )
    out.writelines(part + "\n" for part in parts)
    out.write("</body>\n</html>\n")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #eee; text-align: left; }
td { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.cmd, code { font-family: ui-monospace, monospace; font-size: 0.85em; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1em; }
.note { color: #666; font-size: 0.9em; } .wide { overflow-x: auto; }
"""


def _summary(records: JobRecords) -> str:
    statuses, counts = np.unique(records["status"].astype(str), return_counts=True)
    parts = [
        f"<p>{len(records)} points ({records.attempts} attempts read from "
        f"{len(records.logs)} job log{'s' if len(records.logs) != 1 else ''}): "
        + ", ".join(f"{c} {html.escape(s)}" for s, c in zip(statuses, counts))
        + ".</p>"
    ]
    source = records.source or {}
    exprs = source.get("exprs")
    if isinstance(exprs, list):
        listed = ", ".join(f"<code>{html.escape(str(e))}</code>" for e in exprs)
        parts.append(f"<p>Axes: {listed}.</p>")
    if isinstance(source.get("exec"), str):
        parts.append(f"<p>Command: <code>{html.escape(source['exec'])}</code></p>")
    if records.metrics:
        reported = (
            f"{html.escape(m)} by {int(np.count_nonzero(~np.isnan(records[m])))}"
            for m in records.metrics
        )
        parts.append(f"<p>Metrics reported: {', '.join(reported)} of {len(records)} points.</p>")
    else:
        parts.append("<p class='note'>The jobs reported no metrics.</p>")
    return "\n".join(parts)


def _best(records: JobRecords, table: Table, sort: str | None) -> str:
    """The table the command printed, as HTML; its first rows only when it is long."""
    shown = table.head(100)
    heading = "Best points" if sort else "Points"
    caption = f"sorted by {sort}" if sort else "in index order; rank them with --sort -METRIC"
    if len(shown) < len(table):
        caption += f"; the first {len(shown)} of {len(table)} rows"
    names = shown.names
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for row in shown.rows():
        cells = []
        for name in names:
            value = row[name]
            cls = " class='num'" if isinstance(value, int | float) else ""
            cls = " class='cmd'" if name == "command" else cls
            text = cell_text(value, name in records.axes)
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<h2>{heading}</h2>\n<p class='note'>{html.escape(caption)}</p>\n"
        f"<div class='wide'><table id='best'><thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table></div>"
    )


def _sort_metric(records: JobRecords, sort: str | None) -> str | None:
    """The metric that --sort names (``acc``, ``-acc``, ``acc_mean``), if it names one."""
    name = (sort or "").lstrip("+-")
    for metric in records.metrics:
        if name in (metric, f"{metric}_mean"):
            return metric
    return records.metrics[0] if records.metrics else None


class _Page:
    """The choices shared by the plots: which axes, which categorical axis splits lines."""

    def __init__(self, records: JobRecords, go: Any, over: str | None) -> None:
        self.records = records
        self.go = go
        self.over = over
        self.count = 0
        self.uniques = {a: _uniques(records[a]) for a in records.axes}
        self.axes = [a for a in records.axes if a != over and len(self.uniques[a]) > 1]
        self.hover = _hover_texts(records) if len(records) <= MAX_MARKERS else None

    def figure_html(self, fig: Any) -> str:
        self.count += 1
        fig.update_layout(
            template="plotly_white", height=440, margin={"l": 60, "r": 20, "t": 90, "b": 50}
        )
        html_text: str = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"plot-{self.count}",
            config={"displaylogo": False, "responsive": True},
        )
        return html_text

    def split_axis(self, x: str, by: Sequence[str]) -> str | None:
        """The axis whose values get a line each in the plots against ``x``: another --by
        axis, else a categorical one (with at most MAX_CATEGORIES values either way)."""
        few = [a for a in self.axes if a != x and len(self.uniques[a]) <= MAX_CATEGORIES]
        chosen = [a for a in few if a in by] or [a for a in few if self.records.is_categorical(a)]
        return chosen[0] if chosen else None

    def metric_section(self, metric: str, by: Sequence[str]) -> str:
        parts = []
        if self.hover is None:
            parts.append(
                f"<p class='note'>{len(self.records)} points: too many to draw one by one "
                f"(at most {MAX_MARKERS}); the plots show the means.</p>"
            )
        plots = [self.against(metric, x, self.split_axis(x, by)) for x in self.axes]
        pair = [a for a in by if a in self.axes] if len(by) == 2 else self.axes[:2]
        if len(pair) == 2:
            plots.append(self.heatmap(metric, pair[0], pair[1]))
        parts.append("<div class='plots'>" + "\n".join(plots) + "</div>")
        return "\n".join(parts)

    def against(self, metric: str, x: str, split: str | None) -> str:
        """``metric`` against axis ``x``: each point, and the mean and std at each x value
        (for each value of axis ``split``)."""
        go, records = self.go, self.records
        pooled = [a for a in records.axes if a not in (x, split) and len(self.uniques[a]) > 1]
        over_text = f" over {', '.join(pooled)}" if pooled else ""
        drawn = "each point, and " if self.hover is not None else ""
        y = records[metric]
        valid = ~np.isnan(y)
        groups: list[tuple[str | None, Array]]
        if split is None:
            groups = [(None, valid)]
        else:
            groups = [
                (cell_text(v, True), valid & (records[split] == v)) for v in self.uniques[split]
            ]
        colors = _colors()
        fig = go.Figure()
        for k, (label, rows) in enumerate(groups):
            color = colors[k % len(colors)]
            group = f"{split}={label}" if label is not None else "all"
            if self.hover is not None:
                fig.add_trace(
                    go.Scatter(
                        x=records[x][rows].tolist(),
                        y=y[rows].tolist(),
                        mode="markers",
                        name=f"{label} (points)" if label is not None else "points",
                        legendgroup=group,
                        marker={"color": color, "size": 7, "opacity": 0.55},
                        hovertext=[self.hover[i] for i in np.flatnonzero(rows)],
                        hoverinfo="text",
                        meta="points",
                    )
                )
            xs, mean, std, count = _means(records[x][rows], y[rows])
            fig.add_trace(
                go.Scatter(
                    x=xs.tolist(),
                    y=mean.tolist(),
                    error_y={"type": "data", "array": np.nan_to_num(std).tolist(), "visible": True},
                    mode="lines+markers",
                    name=f"{label}: mean ± std" if label is not None else "mean ± std",
                    legendgroup=group,
                    line={"color": color, "width": 2},
                    marker={"color": color, "size": 9, "symbol": "diamond"},
                    customdata=np.column_stack([std, count]).tolist(),
                    hovertemplate=(
                        f"{_esc(x)} = %{{x}}<br>mean {_esc(metric)} = %{{y:.6g}}"
                        f"<br>std %{{customdata[0]:.3g}}, n = %{{customdata[1]}}"
                        f"<extra>{_esc(label or '')}</extra>"
                    ),
                    meta="mean",
                )
            )
        xaxis: dict[str, Any] = {"title": {"text": x}}
        if records.is_categorical(x):
            xaxis.update(type="category", categoryorder="array", categoryarray=self.uniques[x])
        elif records.is_log_axis(x):
            xaxis.update(type="log")
        fig.update_layout(
            title={
                "text": f"{_esc(metric)} against {_esc(x)}",
                "subtitle": {"text": f"{drawn}the mean ± std{_esc(over_text)}"},
            },
            xaxis=xaxis,
            yaxis={"title": {"text": metric}},
            legend={"title": {"text": split or ""}},
        )
        return self.figure_html(fig)

    def heatmap(self, metric: str, a: str, b: str) -> str:
        """The mean of ``metric`` for each pair of values of axes ``a`` (rows) and ``b``."""
        table = self.records.aggregate(by=[a, b])
        rows, cols = self.uniques[a], self.uniques[b]
        ri = {v: i for i, v in enumerate(rows)}
        ci = {v: i for i, v in enumerate(cols)}
        z = np.full((len(rows), len(cols)), np.nan)
        extra = np.full((len(rows), len(cols), 2), np.nan)
        for va, vb, mean, std, count in zip(
            table[a].tolist(),
            table[b].tolist(),
            table[f"{metric}_mean"].tolist(),
            table[f"{metric}_std"].tolist(),
            table[f"{metric}_count"].tolist(),
        ):
            z[ri[va], ci[vb]] = mean
            extra[ri[va], ci[vb]] = (std, count)
        text_a = [cell_text(v, True) for v in rows]
        text_b = [cell_text(v, True) for v in cols]
        fig = self.go.Figure(
            self.go.Heatmap(
                z=_nulls(z),
                x=text_b,
                y=text_a,
                customdata=_nulls(extra),
                colorscale="Viridis",
                colorbar={"title": {"text": f"mean {metric}"}},
                hovertemplate=(
                    f"{_esc(a)} = %{{y}}<br>{_esc(b)} = %{{x}}<br>mean {_esc(metric)} = "
                    "%{z:.6g}<br>std %{customdata[0]:.3g}, n = %{customdata[1]}<extra></extra>"
                ),
                texttemplate="%{z:.3g}" if z.size <= 400 else None,
            )
        )
        pooled = [x for x in self.records.axes if x not in (a, b) and len(self.uniques[x]) > 1]
        over_text = f" over {', '.join(pooled)}" if pooled else ""
        fig.update_layout(
            title={
                "text": f"mean {_esc(metric)} by {_esc(a)} and {_esc(b)}",
                "subtitle": {"text": f"averaged{_esc(over_text)}" if over_text else ""},
            },
            xaxis={"title": {"text": b}, "type": "category"},
            yaxis={"title": {"text": a}, "type": "category"},
        )
        return self.figure_html(fig)

    def parallel(self, color: str | None) -> str:
        """Every point as a line through its axis values and metrics."""
        records = self.records
        keep = np.ones(len(records), dtype=bool)
        for m in records.metrics:
            keep &= ~np.isnan(records[m])
        n = int(np.count_nonzero(keep))
        if n > MAX_LINES:
            return f"<p class='note'>{n} points: too many lines to draw (at most {MAX_LINES}).</p>"
        if n == 0:
            return "<p class='note'>No point reported every metric: nothing to draw.</p>"
        dims = [self._dimension(a, records[a][keep]) for a in records.axes]
        dims += [{"label": m, "values": records[m][keep].tolist()} for m in records.metrics]
        line: dict[str, Any] = {}
        if color is not None:
            line = {
                "color": records[color][keep].tolist(),
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": {"text": color}},
            }
        fig = self.go.Figure(self.go.Parcoords(dimensions=dims, line=line))
        fig.update_layout(title={"text": f"{n} points across all axes"})
        return self.figure_html(fig)

    def _dimension(self, axis: str, values: Array) -> dict[str, Any]:
        uniques = self.uniques[axis]
        texts = [cell_text(v, True) for v in uniques]
        if self.records.is_categorical(axis):
            codes = {v: i for i, v in enumerate(uniques)}
            return {
                "label": axis,
                "values": [codes[v] for v in values.tolist()],
                "tickvals": list(range(len(uniques))),
                "ticktext": texts,
            }
        if self.records.is_log_axis(axis):
            dim: dict[str, Any] = {"label": f"{axis} (log)", "values": np.log10(values).tolist()}
            if len(uniques) <= 12:
                dim.update(
                    tickvals=np.log10(np.array(uniques, dtype=float)).tolist(), ticktext=texts
                )
            return dim
        dim = {"label": axis, "values": values.tolist()}
        if len(uniques) <= 12:
            dim.update(tickvals=list(uniques), ticktext=texts)
        return dim


def _uniques(col: Array) -> list[Any]:
    """The distinct values of a column, sorted (numbers, then text; missing left out)."""
    _, uniques = factorize(col)
    return [
        v for v in uniques.tolist() if not (v is None or (isinstance(v, float) and math.isnan(v)))
    ]


def _means(x: Array, y: Array) -> tuple[Array, Array, Array, Array]:
    """For each distinct x (sorted): mean, std (ddof 1) and count of the y values there."""
    if not len(x):
        empty = np.zeros(0)
        return empty, empty, empty, empty
    codes, uniques = factorize(x)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.append(True, sorted_codes[1:] != sorted_codes[:-1]))
    sizes = np.diff(np.append(starts, len(x)))
    mean, std, count, _, _ = segment_stats(y[order], starts, sizes)
    return uniques[sorted_codes[starts]], mean, std, count


def _hover_texts(records: JobRecords) -> list[str]:
    """Per point: its index and status, axis values, metrics and command (escaped)."""
    cols = {name: records[name].tolist() for name in records.names}
    texts = []
    for i in range(len(records)):
        lines = [f"<b>#{cols['index'][i]}</b> {_esc(str(cols['status'][i]))}"]
        lines += [f"{_esc(a)} = {_esc(cell_text(cols[a][i], True))}" for a in records.axes]
        lines += [f"{_esc(m)} = {_esc(cell_text(cols[m][i], False))}" for m in records.metrics]
        command = cols.get("command", [None] * len(records))[i]
        if command:
            short = command if len(command) <= HOVER_COMMAND else command[:HOVER_COMMAND] + "…"
            lines.append(f"<i>{_esc(short)}</i>")
        texts.append("<br>".join(lines))
    return texts


def _esc(text: str) -> str:
    """Text for plotly's labels, which read a few HTML tags and entities."""
    return html.escape(text, quote=False)


def _nulls(values: Array) -> list[Any]:
    """A nested list with NaN as None (null in JSON, a gap in a plot)."""
    out = values.astype(object)
    out[np.isnan(values)] = None
    nested: list[Any] = out.tolist()
    return nested


def _colors() -> list[str]:
    colors: list[str] = importlib.import_module("plotly.colors").qualitative.Plotly
    return colors
