"""A same-size corruption of a recorded chunk (issue 14 case 3) is refused on read by `apc`
with advice, and `record --resume` recomputes it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from artiphys.cli import main

REC = ["record", "v1bank", "--layers", "simple.relu", "-q"]


@pytest.mark.slow
def test_tampered_chunk_refused_then_recomputed(tmp_path):
    run = tmp_path / "r"
    assert CliRunner().invoke(main, [*REC, "--out", str(run)]).exit_code == 0
    (chunk,) = run.glob("responses/simple.relu/chunk-*.nc")
    good = chunk.read_bytes()
    bad = bytearray(good)
    i = len(bad) // 2
    bad[i:i + 64] = bad[i:i + 64][::-1]  # same size, different content
    chunk.write_bytes(bytes(bad))
    res = CliRunner().invoke(main, ["apc", str(run), "--out", str(tmp_path / "a"), "-q"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "checksum" in line and "--resume" in line, line
    res = CliRunner().invoke(main, [*REC, "--out", str(run), "--resume"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["apc", str(run), "--out", str(tmp_path / "a2"), "-q"])
    assert res.exit_code == 0, res.output
