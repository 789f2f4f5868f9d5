"""Models by name (artiphys.models.registry) and the model CLI commands. Never downloads."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from artiphys.cli import main
from artiphys.errors import UnknownModelError
from artiphys.models import ModelSpec, Preprocessing, available_models, load_model, register_model
from artiphys.models import weights as W


@pytest.fixture(autouse=True)
def never_download(monkeypatch):
    def no_download(url, dest_dir):
        pytest.fail(f"a test tried to download {url}")

    monkeypatch.setattr(W, "download_weights", no_download)


def forward(spec, size_px=64):
    with torch.no_grad():
        return spec.module(torch.rand(1, 3, size_px, size_px))


def test_available_models_lists_the_zoo_and_analytic_models():
    names = available_models()
    for required in ("alexnet", "vgg16", "vgg19", "resnet18", "resnet50", "googlenet",
                     "squeezenet1_0", "squeezenet1_1", "mobilenet_v2", "v1bank", "neuromatch_conv"):
        assert required in names
    assert any(n.startswith("timm:") for n in available_models(include_timm=True))


@pytest.mark.parametrize("name", [
    "alexnet", "resnet18", "squeezenet1_0", "squeezenet1_1",
    pytest.param("vgg16", marks=pytest.mark.slow), pytest.param("vgg19", marks=pytest.mark.slow),
    pytest.param("resnet50", marks=pytest.mark.slow), pytest.param("googlenet", marks=pytest.mark.slow),
    pytest.param("mobilenet_v2", marks=pytest.mark.slow),
])
def test_zoo_models_load_with_random_init(name):
    spec = load_model(name, pretrained=False, seed=0)
    assert spec.name == name and spec.condition == "untrained" and spec.seed == 0
    assert spec.weights_path is None and not spec.module.training
    assert spec.preprocessing == Preprocessing(input_size_px=224)
    assert forward(spec).shape == (1, 1000)


def test_untrained_is_reproducible_by_seed_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = load_model("squeezenet1_1", pretrained=False, seed=5).module.state_dict()
    assert torch.equal(torch.rand(3), expected_next)
    b = load_model("squeezenet1_1", pretrained=False, seed=5).module.state_dict()
    c = load_model("squeezenet1_1", pretrained=False, seed=6).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])


def test_pretrained_is_the_default_for_zoo_models():
    spec = load_model("squeezenet1_0")
    assert spec.condition == "trained" and spec.weights_path.endswith("squeezenet1_0-5f23fefb.pth")
    assert spec.weights_sha256.startswith("5f23fefb") and spec.seed is None


def test_input_size_override_and_aliases():
    spec = load_model("alexnet", pretrained=False, input_size=227)
    assert spec.preprocessing.input_size_px == 227
    assert spec.provenance()["input_size_px"] == 227
    assert isinstance(spec.aliases, dict)
    with pytest.raises(Exception, match="positive"):
        load_model("alexnet", pretrained=False, input_size=0)


def test_names_are_case_insensitive_and_may_be_prefixed():
    assert load_model("SqueezeNet1_1", pretrained=False).name == "squeezenet1_1"
    assert load_model("torchvision:squeezenet1_1", pretrained=False).name == "squeezenet1_1"


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownModelError, match="Did you mean: alexnet") as err:
        load_model("alexnt")
    assert "artiphys models" in str(err.value) and "\n" not in str(err.value)


def test_timm_model_untrained():
    spec = load_model("timm:resnet18", pretrained=False, seed=1)
    assert spec.name == "timm:resnet18" and spec.condition == "untrained"
    assert spec.preprocessing.input_size_px == 224
    assert forward(spec).shape == (1, 1000)


def test_timm_unknown_name_is_a_clear_error():
    with pytest.raises(UnknownModelError, match="timm has no model 'resnet1'.*resnet18"):
        load_model("timm:resnet1")


def test_timm_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(UnknownModelError, match="timm, which is not installed.*pip install"):
        load_model("timm:resnet18", pretrained=False)


def test_timm_weights_from_a_weights_dir(tmp_path, monkeypatch):
    state = load_model("timm:test_resnet", pretrained=False, seed=2).module.state_dict()
    tmp = tmp_path / "w.pth"
    torch.save(state, tmp)
    sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.rename(tmp_path / f"test_resnet-{sha[:8]}.pth")
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    spec = load_model("timm:test_resnet")
    assert spec.condition == "trained" and spec.weights_sha256 == sha
    assert spec.preprocessing.input_size_px == 160 and spec.preprocessing.mean == (0.5, 0.5, 0.5)
    got = spec.module.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in state)


def test_timm_missing_weights_offline(tmp_path, monkeypatch):
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(Exception, match="no weights found for 'test_resnet'"):
        load_model("timm:test_resnet")


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    (tmp_path / "artiphys_test_nets.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        from artiphys.models import ModelSpec, Preprocessing

        def tiny():
            return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3))

        def filled_tiny():  # stands for a factory that loads its own trained weights
            net = tiny()
            with torch.no_grad():
                for p in net.parameters():
                    p.fill_(0.5)
            return net

        def tiny_spec():
            return ModelSpec("ignored", tiny(), Preprocessing(input_size_px=32), condition="custom")

        def not_a_model():
            return 42

        LIMIT = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "artiphys_test_nets"
    sys.modules.pop("artiphys_test_nets", None)


def test_custom_factory(custom_module):
    spec = load_model(f"{custom_module}:tiny", seed=3)
    assert spec.name == f"{custom_module}:tiny" and spec.condition == "custom" and spec.seed == 3
    again = load_model(f"{custom_module}:tiny", seed=3)
    assert torch.equal(spec.module[0].weight, again.module[0].weight)  # built under the seed
    assert forward(spec, 16).shape == (1, 2, 14, 14)
    with_prep = load_model(f"{custom_module}:tiny_spec", input_size=40)
    assert with_prep.name == f"{custom_module}:tiny_spec" and with_prep.preprocessing.input_size_px == 40


def test_custom_factory_untrained_and_explicit_weights(custom_module, tmp_path):
    trained = load_model(f"{custom_module}:tiny", seed=1)
    path = tmp_path / "tiny.pth"
    torch.save(trained.module.state_dict(), path)
    loaded = load_model(f"{custom_module}:tiny", weights=path, seed=9)
    assert loaded.condition == "trained" and torch.equal(loaded.module[0].weight, trained.module[0].weight)
    filled = load_model(f"{custom_module}:filled_tiny")
    assert filled.condition == "custom" and float(filled.module[0].weight.detach()[0, 0, 0, 0]) == 0.5
    untrained = load_model(f"{custom_module}:filled_tiny", pretrained=False, seed=1)
    assert untrained.condition == "untrained" and untrained.seed == 1
    assert not torch.equal(untrained.module[0].weight, filled.module[0].weight)
    again = load_model(f"{custom_module}:filled_tiny", pretrained=False, seed=1)
    assert torch.equal(untrained.module[0].weight, again.module[0].weight)


@pytest.mark.parametrize("suffix, pattern", [
    (":nope", "has no 'nope'"), (":LIMIT", "not callable"), (":not_a_model", "returned int"),
])
def test_custom_factory_errors(custom_module, suffix, pattern):
    with pytest.raises(UnknownModelError, match=pattern):
        load_model(custom_module + suffix)


def test_custom_module_that_cannot_be_imported():
    with pytest.raises(UnknownModelError, match="cannot import module 'no_such_pkg.mod'.*PYTHONPATH"):
        load_model("no_such_pkg.mod:build")


def test_user_module_is_wrapped_not_copied():
    net = nn.Sequential(nn.Conv2d(3, 2, 3))
    net.train()
    spec = load_model(net)
    assert spec.module is net and spec.name == "custom" and not net.training
    before = net[0].weight.clone()
    twin = load_model(net, pretrained=False, seed=4)
    assert twin.module is not net and twin.condition == "untrained"
    assert torch.equal(net[0].weight, before) and not torch.equal(twin.module[0].weight, before)


def test_a_given_spec_is_not_changed():
    spec = ModelSpec("mine", nn.Conv2d(3, 1, 1), Preprocessing(input_size_px=20), aliases={"c": ""})
    out = load_model(spec, input_size=30)
    assert out.module is spec.module and out.preprocessing.input_size_px == 30
    assert spec.preprocessing.input_size_px == 20 and spec.aliases == {"c": ""}


def test_register_model():
    @register_model("artiphys_test_registered", preprocessing=Preprocessing(input_size_px=17))
    def build():
        return nn.Conv2d(3, 1, 1)

    spec = load_model("artiphys_test_registered")
    assert spec.preprocessing.input_size_px == 17 and "artiphys_test_registered" in available_models()


def test_analytic_models_and_untrained_analytic():
    spec = load_model("v1bank")
    assert spec.condition == "analytic" and spec.weights_path is None
    rand = load_model("v1bank", pretrained=False, seed=1)
    assert rand.condition == "untrained"
    assert not torch.equal(rand.module.quadrature.weight, spec.module.quadrature.weight)


# ---- CLI ----------------------------------------------------------------------------------

def test_cli_models_lists_names():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0 and "alexnet" in result.output.split() and "v1bank" in result.output


def test_cli_model_info_uses_model_options():
    result = CliRunner().invoke(main, ["model-info", "squeezenet1_1", "--untrained", "--seed", "2",
                                       "--input-size", "227", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["condition"], info["seed"], info["input_size_px"]) == ("untrained", 2, 227)


@pytest.mark.parametrize("args, needle", [
    (["alexnt"], "unknown model 'alexnt'"),
    (["squeezenet1_1", "--weights", "/no/such/file.pth"], "does not exist"),
    (["squeezenet1_1", "--untrained", "--weights", "x.pth"], "--untrained"),
    (["timm:not_a_timm_model"], "timm has no model"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, needle):
    result = CliRunner().invoke(main, ["model-info", *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("artiphys: error: ") and needle in lines[0]


def test_cli_corrupt_weights_file(tmp_path):
    path = tmp_path / "squeezenet1_1-12345678.pth"
    path.write_bytes(b"not a torch file")
    result = CliRunner().invoke(main, ["model-info", "squeezenet1_1", "--weights", str(path)])
    assert result.exit_code == 2 and str(path) in result.output
    assert len(result.output.strip().splitlines()) == 1
