"""record_to_store / load_responses: chunked netCDF files, provenance, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from _recording_fakes import tiny_spec

from artiphys.errors import RunStoreError, UnknownLayerError
from artiphys.recording import load_responses, load_run_responses, record, record_to_store
from artiphys.stimuli.base import StimulusSet

LAYERS = ["features.0", "classifier.1"]


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


def test_store_matches_record_and_files_open_with_xarray(tmp_path):
    spec, stim = tiny_spec(), stimuli()
    run = record_to_store(spec, stim, LAYERS, tmp_path / "run", chunk_size=4, batch_size=2,
                          command=["artiphys", "record"])
    expected = record(spec, stim, LAYERS, batch_size=2)
    for layer in LAYERS:
        xr.testing.assert_identical(load_responses(run, layer), expected[layer])
    assert list(load_run_responses(tmp_path / "run")) == LAYERS
    files = sorted((tmp_path / "run" / "responses" / "features.0").iterdir())
    assert [f.name for f in files] == [f"chunk-0000{i}.nc" for i in range(3)]
    with xr.open_dataset(files[-1]) as ds:  # plain xarray, no artiphys
        assert ds["responses"].shape == (2, 4) and list(ds.stimulus.values) == [8, 9]
        assert list(ds["label"].values) == ["s8", "s9"]


def test_manifest_has_provenance(tmp_path):
    spec = tiny_spec(seed=3)
    spec.weights_sha256 = "ab" * 32
    run = record_to_store(spec, stimuli(), LAYERS, tmp_path, units="all", chunk_size=4,
                          command=["artiphys", "record", "tiny"], metadata={"note": "x"})
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["model"]["weights_sha256"] == "ab" * 32 and m["model"]["input_size_px"] == 16
    assert m["seeds"]["model"] == 3
    assert m["stimuli"]["content_hash"] == stimuli().content_hash
    assert m["stimuli"]["parameters"] == ["contrast", "label"]
    assert [e["name"] for e in m["layers"]] == LAYERS and m["units"] == "all"
    assert m["command"] == ["artiphys", "record", "tiny"] and m["note"] == "x"
    for key in ("artiphys_version", "torch_version", "device", "created_utc", "finished_utc",
                "netcdf_engine"):
        assert m[key]
    assert run.manifest["n_chunks"] == 3 and len(run.chunks) == 6


def test_resume_skips_finished_chunks_and_redoes_broken_ones(tmp_path):
    spec, stim = tiny_spec(), stimuli()
    out = tmp_path / "run"
    record_to_store(spec, stim, LAYERS, out, chunk_size=4, batch_size=2)
    first = load_run_responses(out)
    counter = CountForwards(spec.module)
    record_to_store(spec, stim, LAYERS, out, chunk_size=4, batch_size=2, resume=True)
    assert counter.n == 0  # nothing to do
    # a lost file and a damaged file: only their chunks are recomputed
    (out / "responses/features.0/chunk-00001.nc").unlink()
    damaged = out / "responses/classifier.1/chunk-00002.nc"
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0" * 10)
    record_to_store(spec, stim, LAYERS, out, chunk_size=4, batch_size=2, resume=True)
    assert counter.n == 3  # chunk 1 (2 batches of 2) and chunk 2 (1 batch of 2)
    for layer, da in load_run_responses(out).items():
        xr.testing.assert_identical(da, first[layer])


def test_resume_refuses_other_settings(tmp_path):
    spec, stim = tiny_spec(), stimuli()
    record_to_store(spec, stim, LAYERS, tmp_path, chunk_size=4)
    with pytest.raises(RunStoreError, match="--resume"):
        record_to_store(spec, stim, LAYERS, tmp_path, chunk_size=4)
    with pytest.raises(RunStoreError, match=r"layers.*new --out"):
        record_to_store(spec, stim, ["features.0"], tmp_path, chunk_size=4, resume=True)
    with pytest.raises(RunStoreError, match="stimuli.content_hash"):
        record_to_store(spec, stimuli(9), LAYERS, tmp_path, chunk_size=4, resume=True)


def test_loading_an_unfinished_run_says_resume(tmp_path):
    run = record_to_store(tiny_spec(), stimuli(), LAYERS, tmp_path, chunk_size=4)
    (tmp_path / run.chunks["responses/features.0/00002"]["file"]).unlink()
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
    run = record_to_store(tiny_spec(), stim, LAYERS, tmp_path, chunk_size=4, batch_size=3)
    assert max(seen) == 3 and sum(seen) == 10
    sizes = [e["stop"] - e["start"] for e in run.chunks.values()]
    assert max(sizes) == 4


def test_awkward_parameter_columns_survive_the_store(tmp_path):
    params = pd.DataFrame({"orientation (deg)": [0.0, 90.0], "a/b": [1, 2], "flag": [True, False],
                           "cat": pd.Categorical(["u", "v"]),
                           "when": pd.to_datetime(["2020-01-01", "2021-01-01"]),
                           "big": [2**40, -1], "mixed": [1, "one"],
                           "x_px": pd.Series([None, 3], dtype=object)})
    stim = StimulusSet.from_tensor(torch.rand(2, 3, 16, 16), params)
    spec = tiny_spec()
    record_to_store(spec, stim, "features.0", tmp_path)
    xr.testing.assert_identical(load_responses(tmp_path, "features.0"),
                                record(spec, stim, "features.0")["features.0"])
    da = load_responses(tmp_path, "features.0")
    assert list(da["orientation_(deg)"].values) == [0.0, 90.0]
    assert da["a_b"].dtype == np.int64 and da["flag"].dtype == bool
    assert list(da["mixed"].values) == ["1", "one"] and list(da["cat"].values) == ["u", "v"]
    np.testing.assert_array_equal(da["x_px"].values, [np.nan, 3.0])


def test_progress_counts_stimuli_done_on_resume(tmp_path):
    spec, stim = tiny_spec(), stimuli(10)
    record_to_store(spec, stim, LAYERS, tmp_path, chunk_size=4, batch_size=2)
    (tmp_path / "responses/features.0/chunk-00001.nc").unlink()
    seen = []
    run = record_to_store(spec, stim, LAYERS, tmp_path, chunk_size=4, batch_size=2, resume=True,
                          progress=seen.append)
    assert seen == [6, 8, 10]  # chunks 0 and 2 were done; chunk 1 in two batches
    assert run.chunks["responses/features.0/00001"]["device"] == "cpu"


def test_chunks_can_be_read_one_at_a_time(tmp_path):
    from artiphys.recording import iter_response_chunks

    run = record_to_store(tiny_spec(), stimuli(10), LAYERS, tmp_path, chunk_size=4)
    parts = list(iter_response_chunks(run, "classifier.1"))
    assert [p.sizes["stimulus"] for p in parts] == [4, 4, 2]
    assert [p.attrs["chunk"] for p in parts] == [0, 1, 2]
    xr.testing.assert_identical(xr.concat(parts, "stimulus", combine_attrs="drop_conflicts"),
                                load_responses(run, "classifier.1"))
