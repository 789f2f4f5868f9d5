"""store/rundir.py: manifests, refusing to mix runs, chunk bookkeeping, locking."""

from __future__ import annotations

import pytest

from artiphys.errors import RunStoreError
from artiphys.store import RunDir, atomic_write_text

IDENTITY = {"model": {"name": "m", "weights_sha256": "abc"}, "layers": ["a"]}


def test_create_writes_manifest_with_identity_and_time(tmp_path):
    run = RunDir.create(tmp_path / "run", {"command": ["x"]}, identity=IDENTITY)
    m = run.manifest
    assert m["identity"] == IDENTITY and m["command"] == ["x"]
    assert m["created_utc"].endswith("+00:00")


def test_existing_run_needs_resume(tmp_path):
    RunDir.create(tmp_path, {}, identity=IDENTITY)
    with pytest.raises(RunStoreError, match="--resume"):
        RunDir.create(tmp_path, {}, identity=IDENTITY)
    run = RunDir.create(tmp_path, {"command": ["again"]}, identity=IDENTITY, resume=True)
    assert run.manifest["resumed_command"] == ["again"]


def test_resume_with_other_settings_is_refused(tmp_path):
    RunDir.create(tmp_path, {}, identity=IDENTITY)
    other = {**IDENTITY, "model": {"name": "m", "weights_sha256": "def"}}
    with pytest.raises(RunStoreError, match=r"model\.weights_sha256.*new --out"):
        RunDir.create(tmp_path, {}, identity=other, resume=True)


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunStoreError, match="new --out"):
        RunDir.create(tmp_path, {}, identity=IDENTITY)
    with pytest.raises(RunStoreError, match="not an artiphys run"):
        RunDir.open(tmp_path)


def test_chunks_are_verified(tmp_path):
    run = RunDir.create(tmp_path, {}, identity=IDENTITY)
    atomic_write_text(run.file("c/0.txt"), "chunk zero")
    assert not run.chunk_done("c/0")
    run.mark_chunk("c/0", "c/0.txt", start=0)
    assert run.chunk_done("c/0") and run.chunks["c/0"]["start"] == 0
    # a fresh reader sees the index; a changed file (same size) is not accepted
    (tmp_path / "c/0.txt").write_text("chunk ZERO")
    assert not RunDir.open(tmp_path).chunk_done("c/0")
    (tmp_path / "c/0.txt").unlink()
    assert not RunDir.open(tmp_path).chunk_done("c/0", verify=False)


def test_second_writer_is_locked_out(tmp_path):
    run = RunDir.create(tmp_path, {}, identity=IDENTITY)
    with run.lock():
        with pytest.raises(RunStoreError, match="another process"):
            with RunDir.open(tmp_path).lock():
                pass
    with RunDir.open(tmp_path).lock():
        pass


def test_discard_if_empty(tmp_path):
    run = RunDir.create(tmp_path / "run", {}, identity=IDENTITY)
    with run.lock():
        pass
    assert run.discard_if_empty() and not (tmp_path / "run").exists()
    run = RunDir.create(tmp_path / "run", {}, identity=IDENTITY)
    atomic_write_text(run.file("c/0.txt"), "chunk")
    run.mark_chunk("c/0", "c/0.txt")
    assert not run.discard_if_empty() and (tmp_path / "run" / "manifest.json").exists()
