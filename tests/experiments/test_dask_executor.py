"""The battery with ``--executor dask`` on a real ``dask.distributed.LocalCluster`` of two
worker processes equals the local executor bit for bit, also when a worker process is
killed while it computes a task (the scheduler runs that task again elsewhere)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import xarray as xr

distributed = pytest.importorskip("distributed")

from artiphys.experiments.base import ExecutionConfig, ModelConfig  # noqa: E402
from artiphys.experiments.characterize import CharacterizeConfig, run  # noqa: E402
from artiphys.progress import Progress  # noqa: E402
from artiphys.store import RunDir  # noqa: E402
from artiphys.store.executor import DaskExecutor, LocalExecutor, make_executor  # noqa: E402

VOLATILE = ("created_utc",)


def _config(executor="local", scheduler="") -> CharacterizeConfig:
    return CharacterizeConfig(
        model=ModelConfig(name="neuromatch_conv"), layers=("conv", "relu"),
        tests=("apc", "ti", "sparsity"), controls=("shuffle", "untrained"), control_seeds=1,
        synthesis="none", ti_extent_px=8,
        execution=ExecutionConfig(executor=executor, scheduler=scheduler, batch_size=16))


def _results(out) -> dict:
    run_dir = RunDir.open(out)
    found = {}
    for entry in run_dir.current_entries():
        ds = run_dir.steps.load(entry)
        if isinstance(ds, xr.Dataset):
            ds.attrs = {k: v for k, v in ds.attrs.items() if k not in VOLATILE}
        found[entry["digest"]] = (entry["sha256"] if not isinstance(ds, xr.Dataset) else None,
                                  ds)
    return found


def _assert_identical(a, b) -> None:
    ra, rb = _results(a), _results(b)
    assert sorted(ra) == sorted(rb)  # the same steps (execution settings are not in keys)
    for digest, (_, ds) in ra.items():
        if isinstance(ds, xr.Dataset):
            xr.testing.assert_identical(ds, rb[digest][1])
        else:
            assert ds == rb[digest][1]
    assert (a / "summary.json").read_text() == (b / "summary.json").read_text()


def test_execution_settings_are_not_in_step_keys():
    local, dask = _config(), _config("dask", "tcp://127.0.0.1:1")
    assert local.digest() == dask.digest()
    assert isinstance(make_executor(local.execution), LocalExecutor)
    assert isinstance(make_executor(dask.execution), DaskExecutor)


def test_bad_execution_settings_say_what_to_do():
    from artiphys.errors import ArtiphysError

    with pytest.raises(ArtiphysError, match="--executor dask"):
        ExecutionConfig(scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ArtiphysError, match="positive"):
        ExecutionConfig(executor="dask", workers=0)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    run(_config(), out, progress=Progress(quiet=True))
    return out


@pytest.mark.slow
def test_dask_run_equals_the_local_run_bit_for_bit(cluster, local_run, tmp_path):
    out = tmp_path / "dask"
    run(_config("dask", cluster.scheduler_address), out, progress=Progress(quiet=True))
    _assert_identical(local_run, out)


@pytest.mark.slow
def test_a_worker_killed_mid_task_loses_only_that_task(cluster, local_run, tmp_path):
    out = tmp_path / "killed"
    with distributed.Client(cluster, set_as_default=False) as client:
        pids = client.run(os.getpid)  # {worker address: pid}
        killed: list = []

        def killer():
            deadline = time.monotonic() + 120
            while not killed and time.monotonic() < deadline:
                for address, keys in client.processing().items():
                    if keys and address in pids:
                        os.kill(pids[address], signal.SIGKILL)
                        killed.append((address, keys))
                        return
                time.sleep(0.002)

        thread = threading.Thread(target=killer)
        thread.start()
        run(_config("dask", cluster.scheduler_address), out, progress=Progress(quiet=True))
        thread.join()
        assert killed, "no task was seen running on a worker"
        client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
    _assert_identical(local_run, out)
    # every step computed exactly as often as in the local run: the killed task's work was
    # repeated on a worker, no finished step was computed again
    assert sorted(_computed(out)) == sorted(_computed(local_run))


def _computed(out) -> list[str]:
    lines = (out / "run.log").read_text().splitlines()
    return [line.split(" computed ", 1)[1] for line in lines if " computed " in line]
