"""Where the computations of missing steps run: in this process, or as Dask tasks.

An executor has two calls. :meth:`LocalExecutor.run` computes ``fn(*args)`` and returns
its value; the Dask executor sends it to a ``dask.distributed`` worker as one task and
waits for it. :meth:`LocalExecutor.each` calls a function on each of several independent
items (conditions, shape-size groups, sweep axes): in order here, in driver threads with
Dask, so that their tasks run on the workers at the same time.

Results always come back to the driver, which alone writes the step store (atomically,
file then index entry): a run with Dask stores the same files as a local run, and a
finished step is never computed again. A task lost with a worker (killed, out of memory)
is run again by the scheduler on another worker; only that task is repeated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from artiphys.errors import ArtiphysError

SHARE_BYTES = 1 << 20  # task arguments larger than this are scattered once and reused


class LocalExecutor:
    """Everything in this process, in order."""

    name = "local"
    concurrent = False

    def run(self, fn: Callable, *args):
        return fn(*args)

    def each(self, fn: Callable, items: Iterable) -> list:
        return [fn(item) for item in items]

    def close(self) -> None:
        pass


class DaskExecutor:
    """Tasks on a ``dask.distributed`` cluster: the one at ``scheduler``, or a
    ``LocalCluster`` of ``workers`` processes with ``threads`` threads each (started on
    first use, closed by :meth:`close`)."""

    name = "dask"
    concurrent = True

    def __init__(self, scheduler: str = "", workers: int = 2, threads: int = 1,
                 retries: int = 2):
        self.scheduler, self.workers, self.threads = scheduler, workers, threads
        self.retries = retries
        self._client = None
        self._cluster = None
        self._lock = threading.Lock()
        self._scattered: dict[int, tuple] = {}  # id -> (array, its future on the workers)

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client, self._cluster = _connect(self.scheduler, self.workers,
                                                       self.threads)
            return self._client

    def run(self, fn: Callable, *args):
        """``fn(*args)`` as one task; large arrays among ``args`` (e.g. the APC model
        predictions, shared by many tasks) go to the workers once, not with every task."""
        args = tuple(self._shared(a) for a in args)
        future = self.client.submit(fn, *args, pure=False, retries=self.retries)
        try:
            return future.result()
        finally:
            future.release()

    def _shared(self, arg):
        if not _is_array(arg) or arg.nbytes < SHARE_BYTES:
            return arg
        client = self.client
        with self._lock:
            got = self._scattered.get(id(arg))
            if got is None or got[0] is not arg:
                got = (arg, client.scatter(arg, broadcast=True, hash=False))
                self._scattered[id(arg)] = got
            return got[1]

    def each(self, fn: Callable, items: Iterable) -> list:
        items = list(items)
        if len(items) <= 1:
            return [fn(item) for item in items]
        n = max(1, min(len(items), 4 * self.workers * self.threads))
        with ThreadPoolExecutor(n, thread_name_prefix="artiphys-dask") as pool:
            return list(pool.map(fn, items))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            if self._cluster is not None:
                self._cluster.close()
            self._client = self._cluster = None
            self._scattered.clear()


def _is_array(arg) -> bool:
    """A numpy array or torch tensor (torch is not imported for the check)."""
    return isinstance(arg, np.ndarray) or type(arg).__module__ == "torch" and \
        type(arg).__name__ == "Tensor"


def _connect(scheduler: str, workers: int, threads: int):
    """``(client, cluster or None)``. The client is not made dask's default: xarray would
    then take distributed locks for the driver's own netCDF writes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ArtiphysError("--executor dask needs dask.distributed; pip install "
                            "'artiphys[dask]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="30s", set_as_default=False), None
        except (OSError, TimeoutError) as exc:
            raise ArtiphysError(f"cannot reach the dask scheduler at {scheduler} ({exc}); "
                                "check --scheduler or start one with dask-scheduler") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                           dashboard_address=None)
    return Client(cluster, set_as_default=False), cluster


def make_executor(execution) -> LocalExecutor | DaskExecutor:
    """The executor an :class:`~artiphys.experiments.base.ExecutionConfig` asks for."""
    if getattr(execution, "executor", "local") == "dask":
        return DaskExecutor(execution.scheduler, execution.workers, execution.threads)
    return LocalExecutor()


__all__ = ["DaskExecutor", "LocalExecutor", "make_executor"]
