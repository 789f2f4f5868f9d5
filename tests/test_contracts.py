"""The shared contracts: StimulusSet, model input, stimulus registry, CLI error handling."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from artiphys.cli import main
from artiphys.experiments.parsing import parse_channels
from artiphys.errors import ArtiphysError, StimulusError, close_matches
from artiphys.models.spec import ModelSpec, Preprocessing, as_spec
from artiphys.stimuli.base import StimulusSet, to_model_input
from artiphys.stimuli.registry import make_stimuli, parse_stimuli_arg


def test_stimulus_set_renders_batches_in_order():
    images = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 3, 4, 4) / 10
    s = StimulusSet.from_tensor(images, pd.DataFrame({"k": range(5)}))
    got = torch.cat([b for _, b in s.batches(2)])
    assert torch.equal(got, images)
    assert [sl.start for sl, _ in s.batches(2)] == [0, 2, 4]
    sub = s.subset([3, 1])
    assert torch.equal(sub.images(), images[[3, 1]])
    assert list(sub.params["k"]) == [3, 1]


def test_content_hash_tracks_parameters_and_pixels():
    a = make_stimuli("noise", n=3, size_px=8, seed=0)
    b = make_stimuli("noise", n=3, size_px=8, seed=0)
    c = make_stimuli("noise", n=3, size_px=8, seed=1)
    assert a.content_hash == b.content_hash != c.content_hash
    x = torch.rand(2, 3, 4, 4)
    y = x.clone()
    y[0, 0, 0, 0] += 0.1
    assert StimulusSet.from_tensor(x).content_hash != StimulusSet.from_tensor(y).content_hash


def test_from_tensor_rejects_wrong_shape_with_advice():
    with pytest.raises(StimulusError, match=r"\(n, 3, H, H\)"):
        StimulusSet.from_tensor(torch.rand(2, 4, 8, 8))


def test_to_model_input_resizes_and_normalises():
    pre = Preprocessing(input_size_px=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    gray = torch.full((2, 3, 8, 8), 0.75)
    out = to_model_input(gray, pre)
    assert out.shape == (2, 3, 16, 16)
    assert torch.allclose(out, torch.ones_like(out))  # (0.75 - 0.5) / 0.25


def test_bgr_channel_order_flips_channels():
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 1.0  # pure red
    pre = Preprocessing(input_size_px=2, mean=(0, 0, 0), std=(1, 1, 1), channel_order="BGR")
    assert pre.normalise(x)[0, 2].eq(1).all() and pre.normalise(x)[0, 0].eq(0).all()


def test_stimulus_registry_parses_options_and_lists_unknown_names():
    s = parse_stimuli_arg("noise:n=2,size_px=12,sigma=0.3")
    assert len(s) == 2 and s.size_px == 12 and s.meta["sigma"] == 0.3
    with pytest.raises(StimulusError, match="Did you mean: noise"):
        make_stimuli("noize")
    with pytest.raises(StimulusError, match="key=value"):
        parse_stimuli_arg("noise:n")


def test_as_spec_wraps_modules_only():
    spec = as_spec(torch.nn.Conv2d(3, 2, 3))
    assert isinstance(spec, ModelSpec) and spec.name == "custom" and not spec.module.training
    with pytest.raises(TypeError):
        as_spec("alexnet")


def test_close_matches():
    assert "conv1" in close_matches("conv_1", ["conv1", "relu1", "fc6"])
    assert close_matches("zzz", ["conv1"]) == ""


def test_parse_channels():
    assert parse_channels("0-3,7") == [0, 1, 2, 3, 7]
    for bad in ("a-b", "", "5-2", "-1"):
        with pytest.raises(ArtiphysError):
            parse_channels(bad)


def test_cli_turns_user_errors_into_one_line_and_status_2():
    @main.command("_raise_for_test")
    def _raise():
        raise StimulusError("bad stimuli; do this instead")

    try:
        result = CliRunner().invoke(main, ["_raise_for_test"])
    finally:
        main.commands.pop("_raise_for_test")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["artiphys: error: bad stimuli; do this instead"]
