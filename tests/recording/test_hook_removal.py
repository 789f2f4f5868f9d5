"""No hook survives any public call of recording, error paths included (captum's
``test_hook_removal.py``): every module's ``_forward_hooks`` is empty afterwards."""

from __future__ import annotations

import pytest
import torch
from _recording_fakes import PLAIN, tiny_spec
from torch import nn

from artiphys.errors import ArtiphysError
from artiphys.models.spec import as_spec
from artiphys.experiments.record import record_to_store
from artiphys.progress import Progress
from artiphys.recording import hooks_left, record


class Boom(nn.Module):
    def forward(self, x):
        raise ValueError("bug inside forward")


class NaNLayer(nn.Module):
    def forward(self, x):
        return x * float("nan")


class Net(nn.Module):
    """conv -> relu (in place) -> tail, where tail may raise or give NaN."""

    def __init__(self, tail: nn.Module | None = None):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.relu = nn.ReLU(inplace=True)
        self.tail = tail or nn.Identity()
        self.unused = nn.Identity()

    def forward(self, x):
        return self.tail(self.relu(self.conv(x)))


def imgs(n=4):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))


CASES = {
    # name: (model tail, layers, units, expected exception or None)
    "ok, stopped early": (None, ["conv"], "center", None),
    "ok, every layer": (None, ["conv", "relu", "tail"], "all", None),
    "unknown layer": (None, ["conv", "nope"], "center", ArtiphysError),
    "unknown unit": (None, ["conv", "relu"], [(9, 0, 0)], ArtiphysError),
    "NaN": (NaNLayer(), ["conv", "tail"], "center", ArtiphysError),
    "exception inside forward": (Boom(), ["conv", "tail"], "center", ValueError),
    "layer outside forward": (None, ["conv", "unused"], "center", ArtiphysError),
    "ok, a linear view and a call": (None, ["relu:linear", "relu@0"], "center", None),
    "call that never happens": (None, ["conv", "relu@3"], "center", ArtiphysError),
}


@pytest.mark.parametrize("to_store", [False, True], ids=["record", "record_to_store"])
@pytest.mark.parametrize("case", list(CASES))
def test_no_hook_survives(case, to_store, tmp_path):
    tail, layers, units, error = CASES[case]
    spec = as_spec(Net(tail), PLAIN)

    def call():
        if to_store:
            return record_to_store(spec, imgs(), layers, tmp_path / "run", units, chunk_size=2,
                                   batch_size=1, progress=Progress(quiet=True))
        return record(spec, imgs(), layers, units, batch_size=2)

    if error is None:
        call()
    else:
        with pytest.raises(error):
            call()
    assert hooks_left(spec.module) == {}


def test_no_hook_survives_an_interrupt():
    spec = tiny_spec()

    def interrupt(module, inputs, output):
        raise KeyboardInterrupt

    handle = spec.module.classifier.register_forward_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        record(spec, imgs(), ["features.0", "classifier.1"])
    handle.remove()
    assert hooks_left(spec.module) == {}


def test_out_of_memory_says_lower_the_batch_size():
    class OOM(nn.Module):
        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")

    spec = as_spec(Net(OOM()), PLAIN)
    with pytest.raises(ArtiphysError, match="--batch-size"):
        record(spec, imgs(), ["conv", "tail"])
    assert hooks_left(spec.module) == {}


def test_forward_to_layers_keeps_conv_output_from_a_later_inplace_relu():
    """torchvision AlexNet's relu1 is in place: a captured conv1 output must stay pre-ReLU
    when the forward pass goes on to a deeper requested layer."""
    import torchvision

    from artiphys.models.spec import as_spec
    from artiphys.recording.hooks import forward_to_layers, hooks_left

    torch.manual_seed(0)
    model = torchvision.models.alexnet().eval()
    x = torch.randn(1, 3, 224, 224, requires_grad=True)
    acts = forward_to_layers(as_spec(model), x, ["features.0", "features.3"])
    with torch.no_grad():
        direct = model.features[0](x)
    assert acts["features.0"].min() < 0
    torch.testing.assert_close(acts["features.0"], direct)
    acts["features.0"].sum().backward()        # still differentiable
    assert x.grad is not None and not any(hooks_left(model).values())
