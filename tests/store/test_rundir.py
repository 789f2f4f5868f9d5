"""store/rundir.py: manifests, experiments in one run, refusing to mix runs, locking."""

from __future__ import annotations

import pytest

from artiphys.errors import RunStoreError
from artiphys.store import RunDir, Step


def test_new_run_has_a_manifest_with_versions_and_time(tmp_path):
    run = RunDir.open_or_create(tmp_path / "run")
    m = run.manifest
    assert m["experiments"] == {} and m["created_utc"].endswith("+00:00")
    assert m["artiphys_version"] and m["torch_version"] and m["python_version"]


def test_experiment_lifecycle_and_config_files(tmp_path):
    run = RunDir.open_or_create(tmp_path)
    run.begin("record", 'experiment = "record"\n', config_digest="abc", command=["x"])
    assert run.experiments["record"]["status"] == "running"
    assert (tmp_path / "config.toml").read_text() == 'experiment = "record"\n'
    assert (tmp_path / "configs" / "record.toml").is_file()
    run.end("record", steps=["d1"], summary={"n": 1})
    entry = run.experiments["record"]
    assert entry["status"] == "finished" and entry["steps"] == ["d1"]
    assert entry["finished_utc"] and entry["command"] == ["x"]
    assert "record: finished" in (tmp_path / "run.log").read_text()


def test_same_experiment_needs_resume_or_restart_other_kinds_join(tmp_path):
    run = RunDir.open_or_create(tmp_path)
    run.begin("record", "", config_digest="a")
    run.end("record", "failed", error="boom")
    with pytest.raises(RunStoreError, match=r"already holds a record run \(failed\).*--resume"
                                            r".*--restart"):
        RunDir.open_or_create(tmp_path).begin("record", "", config_digest="a")
    RunDir.open_or_create(tmp_path).begin("record", "", config_digest="b", resume=True)
    assert run.experiments["record"]["resumed"] is True
    run.begin("visualize", "", config_digest="c")  # a second experiment: a study
    assert set(run.experiments) == {"record", "visualize"}


def test_restart_discards_the_experiments_steps(tmp_path):
    import xarray as xr

    run = RunDir.open_or_create(tmp_path)
    step = Step("s", 1, {"a": 1}, {}, "x/s")
    entry = run.steps.save(step, xr.Dataset({"v": ("u", [1.0])}))
    run.begin("record", "", config_digest="a")
    run.end("record", steps=[step.digest])
    run.begin("record", "", config_digest="a", restart=True)
    assert not (tmp_path / entry["file"]).exists() and run.steps.entry(step) is None


def test_foreign_folder_and_files_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunStoreError, match="new --out"):
        RunDir.open_or_create(tmp_path)
    with pytest.raises(RunStoreError, match="not an artiphys run"):
        RunDir.open(tmp_path)
    with pytest.raises(RunStoreError, match="is a file"):
        RunDir.open_or_create(tmp_path / "notes.txt")
    with pytest.raises(RunStoreError, match="is a regular file, not a folder"):
        RunDir.open_or_create(tmp_path / "notes.txt" / "run")


def test_second_writer_is_locked_out(tmp_path):
    run = RunDir.open_or_create(tmp_path)
    with run.lock():
        with pytest.raises(RunStoreError, match="another process"):
            with RunDir.open(tmp_path).lock():
                pass
    with RunDir.open(tmp_path).lock():
        pass
