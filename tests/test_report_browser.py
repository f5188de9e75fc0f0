"""The HTML report in a real headless Chromium (Debian's, installed by ``tests/browser.py``).

The page is opened offline from a file:// URL: it must load with no console error and no
request beyond itself, and each plot must draw what the data says: one marker per point
that reported the metric, log x axes for logspace/geomspace axes, one line per value of a
categorical axis, a heat map, and a parallel-coordinates view of every point; hovering a
point shows its values and command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser import load_page
from test_report import report, sweep_records, write_log

# a cold apt-get install of chromium may take minutes: more than the default 600 s limit
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1200)]

# Runs in the page once it has loaded: a description of every plot, and the text shown
# when the first marker of each plot is hovered (through plotly's own hover call).
CHECK = """
(async () => {
  await new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve, 100)));
  return [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
    const layout = gd._fullLayout;
    const plot = {
      types: gd._fullData.map(t => t.type),
      title: layout.title.text,
      xtype: layout.xaxis ? layout.xaxis.type : null,
      traces: [...gd.querySelectorAll('.scatterlayer .trace')].map(el => {
        const trace = el.__data__[0].trace;
        return {meta: trace.meta, name: trace.name, data: trace.x.length,
                drawn: el.querySelectorAll('path.point').length};
      }),
      heatmapCells: gd._fullData.filter(t => t.type === 'heatmap').map(t => t.z.flat().length),
      parcoords: gd._fullData.filter(t => t.type === 'parcoords').map(t => ({
        lines: t.dimensions[0].values.length,
        dimensions: t.dimensions.length,
        drawnAxes: gd.querySelectorAll('.parcoords .y-axis').length,
      })),
    };
    const k = gd._fullData.findIndex(t => t.meta === 'points');
    if (k >= 0) {
      Plotly.Fx.hover(gd, [{curveNumber: k, pointNumber: 0}]);
      plot.hover = gd.querySelector('.hoverlayer').textContent;
      Plotly.Fx.unhover(gd);
    }
    return plot;
  });
})()
"""


def test_report_page_loads_offline_and_draws_one_marker_per_point(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    rows = sweep_records()  # LR logspace, OPT case:sgd,adam, SEED range, W linspace
    rows[5]["metrics"]["acc"] = None  # one point reports no acc: it gets no acc marker
    rows[5]["status"] = "failed"
    log = write_log(tmp_path / "log.jsonl", rows)
    page = tmp_path / "report.html"
    assert report(str(log), "--over", "SEED", "--sort", "-acc", "-o", str(page)) == 0

    result = load_page(page.as_uri(), CHECK)

    assert result.errors == []
    assert {url.split(":")[0] for url in result.requests} <= {"file", "data"}
    assert result.requests[0] == page.as_uri()
    plots: list[dict[str, Any]] = result.value
    scatters = [p for p in plots if p["types"][0] == "scatter"]
    # acc and loss, each against LR, OPT and W (SEED is what the means average over)
    assert [p["title"] for p in scatters] == [
        f"{m} against {x}" for m in ("acc", "loss") for x in ("LR", "OPT", "W")
    ]
    assert [p["xtype"] for p in scatters] == ["log", "category", "linear"] * 2
    for p in scatters:
        points = [t for t in p["traces"] if t["meta"] == "points"]
        for t in p["traces"]:
            assert t["drawn"] == t["data"], (p["title"], t)  # every data point is drawn
        expected = 23 if p["title"].startswith("acc") else 24
        assert sum(t["drawn"] for t in points) == expected, p["title"]
        # one line of means per OPT value, except in the plot against OPT itself
        means = [t["name"] for t in p["traces"] if t["meta"] == "mean"]
        by_opt = ["adam: mean ± std", "sgd: mean ± std"]
        assert means == (["mean ± std"] if p["title"].endswith("OPT") else by_opt)
        assert "LR = " in p["hover"] and "SEED = " in p["hover"] and "train " in p["hover"]
    heatmaps = [p for p in plots if p["types"] == ["heatmap"]]
    assert [p["title"] for p in heatmaps] == ["mean acc by LR and OPT", "mean loss by LR and OPT"]
    assert all(p["heatmapCells"] == [3 * 2] for p in heatmaps)
    (parallel,) = [p for p in plots if p["types"] == ["parcoords"]]
    assert parallel["parcoords"] == [{"lines": 23, "dimensions": 6, "drawnAxes": 6}]
    assert len(plots) == len(scatters) + len(heatmaps) + 1
