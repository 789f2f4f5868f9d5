"""Figures written by worker processes are the same files as written inline; a figure that
cannot be pickled is written in this process; a worker's error reaches the caller."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from artiphys.report.page import parallel_saves, save_figure  # noqa: E402


def _fig(k):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot(np.arange(5), np.arange(5) * k)
    ax.set_title(f"figure {k}")
    return fig


def test_workers_write_the_same_pictures_as_inline(tmp_path):
    with parallel_saves(2):
        for k in range(4):
            save_figure(_fig(k), tmp_path / f"par{k}")
    for k in range(4):
        save_figure(_fig(k), tmp_path / f"inl{k}")
    for k in range(4):
        a = np.asarray(Image.open(tmp_path / f"par{k}.png"))
        b = np.asarray(Image.open(tmp_path / f"inl{k}.png"))
        assert a.shape == b.shape and np.array_equal(a, b)
        assert (tmp_path / f"par{k}.pdf").stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp*"))


def test_an_unpicklable_figure_is_written_here(tmp_path):
    fig = _fig(1)
    fig.unpicklable = lambda: None  # lambdas cannot be pickled
    with parallel_saves(2):
        save_figure(fig, tmp_path / "f")
    assert (tmp_path / "f.png").is_file() and (tmp_path / "f.pdf").is_file()


def test_a_worker_error_is_raised_at_the_end(tmp_path):
    with pytest.raises(OSError):
        with parallel_saves(2):
            save_figure(_fig(1), tmp_path / "missing-folder" / "f")
