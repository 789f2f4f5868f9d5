"""store/steps.py: results keyed by what determines them, verified on every read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from artiphys.errors import RunStoreError
from artiphys.store import BadStepFile, RunDir, Step
from artiphys.store.steps import from_netcdf, to_netcdf_safe


def ds(value=1.0):
    return xr.Dataset({"v": ("unit", np.array([value, 2.0])), "ok": ("unit", [True, False])},
                      attrs={"analysis": "test", "grid": [1, 2], "none": None})


def step(**settings):
    return Step("apc", 1, {"model": "m", "weights_sha256": "ab", "layer": "conv1"},
                settings, "trained/conv1/apc", {"layer": "conv1", "condition": "trained"})


def test_digest_depends_on_everything_that_determines_the_result():
    base = step(k=1)
    assert base.digest == step(k=1).digest
    assert base.digest != step(k=2).digest
    assert base.digest != Step("apc", 2, base.inputs, base.settings, base.path).digest
    assert base.digest != Step("apc", 1, {**base.inputs, "layer": "conv2"}, base.settings,
                               base.path).digest
    # meta and path are labels, not determinants
    assert base.digest == Step("apc", 1, base.inputs, base.settings, "elsewhere", {}).digest


def test_get_or_compute_reuses_only_a_matching_intact_result(tmp_path):
    store = RunDir.open_or_create(tmp_path).steps
    calls = []
    compute = lambda: calls.append(1) or ds()  # noqa: E731
    first = store.get_or_compute(step(k=1), compute)
    again = store.get_or_compute(step(k=1), compute)
    xr.testing.assert_identical(first, again)
    assert len(calls) == 1 and again["ok"].dtype == bool
    store.get_or_compute(step(k=2), compute)
    assert len(calls) == 2
    assert [a for a, *_ in store.events] == ["computed", "reused", "computed"]


def test_files_are_self_describing(tmp_path):
    store = RunDir.open_or_create(tmp_path).steps
    entry = store.save(step(k=1), ds())
    assert entry["file"].startswith("trained/conv1/apc.") and entry["file"].endswith(".nc")
    with xr.open_dataset(tmp_path / entry["file"]) as f:  # plain xarray, no artiphys
        a = f.attrs
    assert a["model"] == "m" and a["weights_sha256"] == "ab" and a["layer"] == "conv1"
    assert a["condition"] == "trained" and a["analysis"] == "test"
    assert a["artiphys_step"] == "apc" and json.loads(a["step_settings_json"]) == {"k": 1}
    assert a["artiphys_version"] and a["created_utc"] and a["step_digest"] == entry["digest"]


@pytest.mark.parametrize("damage", ["truncate", "same_size", "delete", "garbage_entry"])
def test_damaged_results_are_recomputed_never_read(tmp_path, damage):
    store = RunDir.open_or_create(tmp_path).steps
    entry = store.save(step(k=1), ds(1.0))
    path = tmp_path / entry["file"]
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "same_size":
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes(255 - b for b in data[i:i + 64]) + data[i + 64:])
    elif damage == "delete":
        path.unlink()
    else:
        (tmp_path / ".steps" / f"{entry['digest']}.json").write_text("{not json")
    fresh = RunDir.open(tmp_path).steps  # a new reader: no cached verification
    with pytest.raises(BadStepFile if damage != "garbage_entry" else RunStoreError,
                       match="--resume"):
        fresh.load(step(k=1))
    got = fresh.get_or_compute(step(k=1), lambda: ds(5.0))
    assert float(got["v"][0]) == 5.0 and fresh.events[-1][0] in ("recomputed", "computed")
    assert float(RunDir.open(tmp_path).steps.load(step(k=1))["v"][0]) == 5.0


def test_non_finite_values_are_refused_where_they_must_be_finite(tmp_path):
    store = RunDir.open_or_create(tmp_path).steps
    store.save(step(k=1), ds(np.nan))
    with pytest.raises(RunStoreError, match="NaN"):
        RunDir.open(tmp_path).steps.load(step(k=1), finite=("v",))
    got = store.get_or_compute(step(k=1), lambda: ds(3.0), finite=("v",))
    assert float(got["v"][0]) == 3.0


def test_many_computes_only_the_missing_ones_together(tmp_path):
    store = RunDir.open_or_create(tmp_path).steps
    steps = [step(layer=i) for i in range(4)]
    store.save(steps[1], ds(1.0))
    seen = []

    def compute(todo):
        seen.append([s.settings["layer"] for s in todo])
        return [ds(float(s.settings["layer"])) for s in todo]

    got = store.get_or_compute_many(steps, compute)
    assert seen == [[0, 2, 3]] and [float(g["v"][0]) for g in got] == [0.0, 1.0, 2.0, 3.0]
    assert store.get_or_compute_many(steps, compute, load=False) == [None] * 4
    assert seen == [[0, 2, 3]]


def test_entries_are_found_by_meta_and_json_results_round_trip(tmp_path):
    store = RunDir.open_or_create(tmp_path).steps
    s = Step("table", 1, {"x": 1}, {}, "tables/t", {"experiment": "characterize"})
    store.save(s, {"rows": [1, 2]})
    assert store.load(s) == {"rows": [1, 2]}
    assert [e["digest"] for e in store.entries(experiment="characterize")] == [s.digest]
    assert store.entries(experiment="record") == []


def test_netcdf_safe_round_trip_keeps_bools_and_text():
    d = xr.Dataset({"b": ("u", [True, False]), "t": ("u", np.array(["a", None], object))},
                   attrs={"d": {"k": 1}, "v": [1, 2]})
    safe = to_netcdf_safe(d)
    assert safe["b"].dtype == np.int8 and safe["t"].dtype.kind == "U"
    assert json.loads(safe.attrs["d"]) == {"k": 1} and list(safe.attrs["v"]) == [1, 2]
    assert from_netcdf(safe)["b"].dtype == bool
