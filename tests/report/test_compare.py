"""``report RUN1 RUN2 --out``: runs of any kind compared, every unusable run named with why."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from artiphys.errors import RunStoreError
from artiphys.report.compare import build_comparison_report, check_runs, layer_figures, layer_table


def _run(folder, model, medians, status="finished"):
    """A run folder holding only a manifest and a battery summary (two layers)."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(
        {"experiments": {"characterize": {"status": status}}}))
    layers = {la: {cond: {"n_units": 8, "apc_r_median": r, "ti_median": t}
                   for cond, (r, t) in by_cond.items()} for la, by_cond in medians.items()}
    (folder / "summary.json").write_text(json.dumps(
        {"model": {"name": model}, "layer_order": list(medians), "layers": layers}))
    return folder


def test_runs_compared_and_unusable_ones_named(tmp_path):
    a = _run(tmp_path / "a", "netA", {"conv1": {"trained": (0.3, 0.1), "untrained": (0.2, 0.05)},
                                      "conv2": {"trained": (0.5, 0.4)}})
    b = _run(tmp_path / "b", "netB", {"c1": {"trained": (0.1, 0.7)}}, status="running")
    not_run = tmp_path / "plain"
    not_run.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps({"experiments": {"record": {}}}))
    runs, refused = check_runs([a, b, not_run, tmp_path / "gone", empty])
    assert [r.name for r in runs] == ["a", "b"]
    assert runs[1].note == "unfinished: characterize is running"
    reasons = dict(refused)
    assert reasons[str(not_run)].startswith("not an artiphys run")
    assert reasons[str(tmp_path / "gone")] == "no such folder"
    assert "no battery summary" in reasons[str(empty)] and "record" in reasons[str(empty)]

    index = build_comparison_report([a, b, not_run, tmp_path / "gone", empty], tmp_path / "cmp")
    page = index.read_text()
    assert "Runs not used" in page and "no such folder" in page and "unfinished" in page
    table = pd.read_csv(tmp_path / "cmp" / "layer_medians.csv")
    assert list(table.run) == ["a", "a", "a", "b"]
    assert list(table.apc_r_median) == [0.3, 0.2, 0.5, 0.1]
    assert "Layer medians across runs" in page


def test_the_figure_plots_each_runs_medians_by_depth(tmp_path):
    a = _run(tmp_path / "a", "netA", {"conv1": {"trained": (0.3, 0.1)},
                                      "conv2": {"trained": (0.5, 0.4)}})
    runs, _ = check_runs([a])
    ((_, caption, fig),) = layer_figures(layer_table(runs))
    apc_ax, ti_ax = fig.axes[:2]
    x, y = apc_ax.lines[0].get_data()
    assert list(x) == [0, 1] and list(y) == [0.3, 0.5]
    assert list(ti_ax.lines[0].get_data()[1]) == [0.1, 0.4]
    assert "1 run/condition pairs, 2 layer rows" in caption


def test_no_usable_run_is_one_error_naming_each(tmp_path):
    with pytest.raises(RunStoreError, match="gone: no such folder"):
        build_comparison_report([tmp_path / "gone", tmp_path / "gone2"], tmp_path / "cmp")
