"""The record experiment: chunked netCDF steps, provenance, resume, bounded memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from _recording_fakes import tiny_spec

from artiphys.errors import RunStoreError, UnknownLayerError
from artiphys.experiments.record import (iter_response_chunks, load_responses,
                                         load_run_responses, record_to_store)
from artiphys.progress import Progress
from artiphys.recording import record
from artiphys.stimuli.base import StimulusSet

LAYERS = ["features.0", "classifier.1"]
QUIET = {"progress": Progress(quiet=True)}


def stimuli(n=10):
    imgs = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    params = pd.DataFrame({"contrast": np.linspace(0, 1, n), "label": [f"s{i}" for i in range(n)]})
    return StimulusSet.from_tensor(imgs, params, name="test")


class CountForwards:
    def __init__(self, module):
        self.n = 0
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, inputs):
        self.n += 1


def chunk_files(out, layer):
    return sorted((out / "responses" / layer).glob("chunk-*.nc"))


def test_store_matches_record_and_files_open_with_xarray(tmp_path):
    spec, stim = tiny_spec(), stimuli()
    run = record_to_store(spec, stim, LAYERS, tmp_path / "run", chunk_size=4, batch_size=2,
                          command=["artiphys", "record"], **QUIET)
    expected = record(spec, stim, LAYERS, batch_size=2)
    for layer in LAYERS:
        got = load_responses(run, layer)
        xr.testing.assert_equal(got, expected[layer])
        assert got.attrs == expected[layer].attrs
    assert list(load_run_responses(tmp_path / "run")) == LAYERS
    files = chunk_files(tmp_path / "run", "features.0")
    assert [f.name[:11] for f in files] == [f"chunk-0000{i}" for i in range(3)]
    with xr.open_dataset(files[-1]) as ds:  # plain xarray, no artiphys
        assert ds["responses"].shape == (2, 4) and list(ds.stimulus.values) == [8, 9]
        assert list(ds["label"].values) == ["s8", "s9"]
        assert ds.attrs["model"] == "tiny" and ds.attrs["layer"] == "features.0"
        assert ds.attrs["artiphys_step"] == "responses" and ds.attrs["artiphys_version"]


def test_manifest_has_provenance(tmp_path):
    spec = tiny_spec(seed=3)
    spec.weights_sha256 = "ab" * 32
    record_to_store(spec, stimuli(), LAYERS, tmp_path, units="all", chunk_size=4,
                    command=["artiphys", "record", "tiny"], **QUIET)
    m = (tmp_path / "manifest.json").read_text()
    import json

    m = json.loads(m)
    e = m["experiments"]["record"]
    assert e["model"]["weights_sha256"] == "ab" * 32 and e["model"]["input_size_px"] == 16
    assert e["model"]["seed"] == 3 and e["status"] == "finished"
    assert e["stimuli"]["content_hash"] == stimuli().content_hash
    assert [x["name"] for x in e["layers"]] == LAYERS and e["units"] == "all"
    assert e["command"] == ["artiphys", "record", "tiny"] and e["n_chunks"] == 3
    for key in ("artiphys_version", "torch_version", "created_utc"):
        assert m[key]
    assert e["finished_utc"] and e["summary"]["device"] == "cpu"
    assert len(e["steps"]) == 6 and (tmp_path / "config.toml").is_file()


def test_resume_skips_finished_chunks_and_redoes_broken_ones(tmp_path):
    spec, stim = tiny_spec(), stimuli()
    out = tmp_path / "run"
    record_to_store(spec, stim, LAYERS, out, chunk_size=4, batch_size=2, **QUIET)
    first = load_run_responses(out)
    counter = CountForwards(spec.module)
    record_to_store(spec, stim, LAYERS, out, chunk_size=4, batch_size=2, resume=True, **QUIET)
    assert counter.n == 1  # nothing to do but the check of the first stimulus
    # a lost file and a damaged file (same size): only their chunks are recomputed
    chunk_files(out, "features.0")[1].unlink()
    damaged = chunk_files(out, "classifier.1")[2]
    data = damaged.read_bytes()
    damaged.write_bytes(data[:-10] + b"0" * 10)
    with pytest.raises(RunStoreError, match="--resume"):
        load_responses(out, "classifier.1")  # every read is verified, not only resume
    record_to_store(spec, stim, LAYERS, out, chunk_size=4, batch_size=2, resume=True, **QUIET)
    assert counter.n == 1 + 1 + 3  # checks; chunk 1 (2 batches of 2), chunk 2 (1 of 2)
    for layer, da in load_run_responses(out).items():
        xr.testing.assert_identical(da, first[layer])


def test_resume_is_one_rule_new_settings_compute_new_steps(tmp_path):
    spec, stim = tiny_spec(), stimuli()
    record_to_store(spec, stim, LAYERS, tmp_path, chunk_size=4, **QUIET)
    with pytest.raises(RunStoreError, match="--resume"):
        record_to_store(spec, stim, LAYERS, tmp_path, chunk_size=4, **QUIET)
    counter = CountForwards(spec.module)
    run = record_to_store(spec, stimuli(9), LAYERS, tmp_path, chunk_size=4, resume=True,
                          **QUIET)
    assert counter.n == 1 + 3  # the check, then every chunk of the other stimuli
    assert load_responses(run, "features.0").sizes["stimulus"] == 9


def test_loading_an_unfinished_run_says_resume(tmp_path):
    record_to_store(tiny_spec(), stimuli(), LAYERS, tmp_path, chunk_size=4, **QUIET)
    chunk_files(tmp_path, "features.0")[2].unlink()
    with pytest.raises(RunStoreError, match="--resume"):
        load_responses(tmp_path, "features.0")
    with pytest.raises(UnknownLayerError, match="Recorded layers: features.0, classifier.1"):
        load_responses(tmp_path, "features.3")
    with pytest.raises(RunStoreError, match="not an artiphys run"):
        load_responses(tmp_path / "responses", "features.0")


def test_memory_is_bounded_by_the_chunk(tmp_path, monkeypatch):
    """Stimuli are rendered one batch at a time and each file holds one chunk."""
    stim = stimuli(10)
    seen = []
    render = stim._render
    monkeypatch.setattr(stim, "_render", lambda rows: seen.append(len(rows)) or render(rows))
    record_to_store(tiny_spec(), stim, LAYERS, tmp_path, chunk_size=4, batch_size=3, **QUIET)
    assert max(seen) == 3 and sum(seen) == 1 + 10  # the first-stimulus check, then all
    sizes = [p.sizes["stimulus"] for p in iter_response_chunks(tmp_path, "features.0")]
    assert sizes == [4, 4, 2]


def test_awkward_parameter_columns_survive_the_store(tmp_path):
    params = pd.DataFrame({"orientation (deg)": [0.0, 90.0], "a/b": [1, 2], "flag": [True, False],
                           "cat": pd.Categorical(["u", "v"]),
                           "when": pd.to_datetime(["2020-01-01", "2021-01-01"]),
                           "big": [2**40, -1], "mixed": [1, "one"],
                           "x_px": pd.Series([None, 3], dtype=object)})
    stim = StimulusSet.from_tensor(torch.rand(2, 3, 16, 16), params)
    spec = tiny_spec()
    record_to_store(spec, stim, "features.0", tmp_path, **QUIET)
    xr.testing.assert_identical(load_responses(tmp_path, "features.0"),
                                record(spec, stim, "features.0")["features.0"])
    da = load_responses(tmp_path, "features.0")
    assert list(da["orientation_(deg)"].values) == [0.0, 90.0]
    assert da["a_b"].dtype == np.int64 and da["flag"].dtype == bool
    assert list(da["mixed"].values) == ["1", "one"] and list(da["cat"].values) == ["u", "v"]
    np.testing.assert_array_equal(da["x_px"].values, [np.nan, 3.0])


def test_progress_shows_numbered_chunks(tmp_path):
    lines = []
    record_to_store(tiny_spec(), stimuli(10), LAYERS, tmp_path, chunk_size=4,
                    progress=Progress(echo=lines.append))
    assert [ln.split()[0] for ln in lines] == ["[1/3]", "[2/3]", "[3/3]"]
    assert "about" in lines[-1] and "left" in lines[-1]


def test_chunks_can_be_read_one_at_a_time(tmp_path):
    run = record_to_store(tiny_spec(), stimuli(10), LAYERS, tmp_path, chunk_size=4, **QUIET)
    parts = list(iter_response_chunks(run, "classifier.1"))
    assert [p.sizes["stimulus"] for p in parts] == [4, 4, 2]
    assert [p.attrs["chunk"] for p in parts] == [0, 1, 2]
    whole = load_responses(run, "classifier.1")
    xr.testing.assert_equal(xr.concat(parts, "stimulus"), whole)
