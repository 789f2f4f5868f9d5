"""Weight resolution, verification and loading (artiphys.models.weights). Never downloads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from artiphys.errors import ArtiphysError, WeightsError
from artiphys.models import load_model
from artiphys.models import weights as W

ARCH = "squeezenet1_1"  # small (1.2 M parameters): cheap weight files for the tests


@pytest.fixture
def real_weights(shared_dir) -> Path:
    """The shared folder of real weights (not via ARTIPHYS_WEIGHTS_DIR, which ``places`` moves)."""
    return shared_dir / "weights"


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Empty weights dir, no config, empty hub cache, and a download step that must not run."""
    wdir, hub = tmp_path / "weights", tmp_path / "hub"
    wdir.mkdir()
    hub.mkdir()
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(wdir))
    monkeypatch.setenv(W.CONFIG_ENV, str(tmp_path / "no-config.json"))
    monkeypatch.delenv(W.OFFLINE_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_download(url, dest_dir):
        raise WeightsError(f"download of {url} failed (tests never download)")

    monkeypatch.setattr(W, "download_weights", no_download)
    return {"weights": wdir, "hub": hub, "root": tmp_path}


def save_state(folder: Path, seed: int, name: str | None = None, arch: str = ARCH) -> tuple[Path, dict]:
    """Save the state dict of an untrained ``arch`` (seeded); name it ``<arch>-<sha8>.pth``
    unless ``name`` is given."""
    state = load_model(arch, pretrained=False, seed=seed).module.state_dict()
    tmp = folder / "tmp-weights.pth"
    torch.save(state, tmp)
    sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / (name or f"{arch}-{sha[:8]}.pth")
    tmp.rename(path)
    return path, state


def same_state(module, state) -> bool:
    got = module.state_dict()
    return got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)


def test_explicit_file(places):
    path, state = save_state(places["root"], seed=1, name="my weights.pth")
    spec = load_model(ARCH, weights=path)
    assert same_state(spec.module, state)
    assert spec.condition == "trained" and spec.weights_path == str(path)
    assert spec.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not spec.module.training


def test_weights_dir_accepts_any_sha_named_file_for_the_architecture(places):
    path, state = save_state(places["weights"], seed=2)
    save_state(places["weights"], seed=3, arch="squeezenet1_0")  # another architecture's file
    spec = load_model(ARCH)
    assert same_state(spec.module, state) and spec.weights_path == str(path)


def test_config_key_names_a_weights_dir(places, monkeypatch):
    monkeypatch.delenv(W.WEIGHTS_DIR_ENV)
    cfg_dir = places["root"] / "from-config"
    cfg_dir.mkdir()
    path, state = save_state(cfg_dir, seed=4)
    config = places["root"] / "config.json"
    config.write_text(json.dumps({"weights_dir": str(cfg_dir)}))
    monkeypatch.setenv(W.CONFIG_ENV, str(config))
    spec = load_model(ARCH)
    assert same_state(spec.module, state) and spec.weights_path == str(path)


def test_environment_dir_comes_before_config(places, monkeypatch):
    env_path, env_state = save_state(places["weights"], seed=5)
    cfg_dir = places["root"] / "from-config"
    cfg_dir.mkdir()
    save_state(cfg_dir, seed=6)
    config = places["root"] / "config.json"
    config.write_text(json.dumps({"weights_dir": str(cfg_dir)}))
    monkeypatch.setenv(W.CONFIG_ENV, str(config))
    assert load_model(ARCH).weights_path == str(env_path)


def test_bad_config_file_is_a_clear_error(places, monkeypatch):
    config = places["root"] / "config.json"
    config.write_text("{not json")
    monkeypatch.setenv(W.CONFIG_ENV, str(config))
    with pytest.raises(ArtiphysError, match="config.json"):
        load_model(ARCH)


def test_hub_cache_is_searched_after_weights_dirs(places):
    ckpt = places["hub"] / "checkpoints"
    ckpt.mkdir()
    path, state = save_state(ckpt, seed=7)
    spec = load_model(ARCH)
    assert same_state(spec.module, state) and spec.weights_path == str(path)


def test_download_is_the_last_step(places, monkeypatch):
    from torchvision import models

    calls = []

    def fake_download(url, dest_dir):
        calls.append((url, Path(dest_dir)))
        dest_dir.mkdir(parents=True, exist_ok=True)
        return save_state(dest_dir, seed=8)[0]

    monkeypatch.setattr(W, "download_weights", fake_download)
    spec = load_model(ARCH)
    assert calls == [(models.get_model_weights(ARCH).DEFAULT.url, places["hub"] / "checkpoints")]
    assert spec.condition == "trained" and Path(spec.weights_path).parent == places["hub"] / "checkpoints"


def test_missing_weights_say_where_to_put_the_file(places):
    with pytest.raises(WeightsError) as err:
        load_model(ARCH)
    msg = str(err.value)
    assert "\n" not in msg
    for part in (str(places["weights"]), "torch hub cache", "tests never download",
                 "squeezenet1_1-b8a52dc0.pth", W.WEIGHTS_DIR_ENV, "--weights", "--untrained"):
        assert part in msg


def test_offline_setting_skips_the_download(places, monkeypatch):
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    monkeypatch.setattr(W, "download_weights", lambda *a: pytest.fail("download attempted"))
    with pytest.raises(WeightsError, match="download skipped"):
        load_model(ARCH)


def test_renamed_file_with_wrong_sha_prefix_fails(real_weights, places):
    real = real_weights / "squeezenet1_0-5f23fefb.pth"
    renamed = places["weights"] / "squeezenet1_0-0badc0de.pth"
    renamed.symlink_to(real)
    with pytest.raises(WeightsError) as err:
        load_model("squeezenet1_0")
    msg = str(err.value)
    assert str(renamed) in msg and "0badc0de" in msg and "5f23fefb" in msg and "\n" not in msg


def test_truncated_file_fails_naming_the_file(places):
    path, _ = save_state(places["root"], seed=9, name="cut.pth")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError) as err:
        load_model(ARCH, weights=path)
    assert str(path) in str(err.value) and "truncated" in str(err.value)


def test_truncated_sha_named_file_fails_its_check(places):
    path, _ = save_state(places["weights"], seed=10)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="truncated") as err:
        load_model(ARCH)
    assert str(path) in str(err.value)


def test_state_dict_of_another_architecture_fails_clearly(real_weights, places):
    with pytest.raises(WeightsError) as err:
        load_model(ARCH, weights=real_weights / "mobilenet_v2-c989448a.pth")
    msg = str(err.value)
    assert "does not fit architecture 'squeezenet1_1'" in msg and "missing keys" in msg
    assert "unexpected keys" in msg and "\n" not in msg
    path, _ = save_state(places["root"], seed=11, arch="squeezenet1_0", name="sq10.pth")
    with pytest.raises(WeightsError, match="shape mismatches"):
        load_model(ARCH, weights=path)


def test_pickled_module_is_refused(places):
    path = places["root"] / "whole-model.pth"
    torch.save(load_model(ARCH, pretrained=False).module, path)
    with pytest.raises(WeightsError, match="state_dict"):
        load_model(ARCH, weights=path)


def test_file_that_is_not_a_state_dict(places):
    path = places["root"] / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        load_model(ARCH, weights=path)


def test_missing_explicit_file(places):
    with pytest.raises(WeightsError, match="does not exist"):
        load_model(ARCH, weights=places["root"] / "nope.pth")


def test_checkpoint_wrappers_and_dataparallel_prefix_are_unwrapped(places):
    state = load_model(ARCH, pretrained=False, seed=12).module.state_dict()
    path = places["root"] / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    assert same_state(load_model(ARCH, weights=path).module, state)


def test_untrained_and_weights_together_is_an_error(places):
    path, _ = save_state(places["root"], seed=13, name="w.pth")
    with pytest.raises(ArtiphysError, match="--untrained"):
        load_model(ARCH, pretrained=False, weights=path)


def test_googlenet_weights_without_auxiliary_heads_load(places):
    state = load_model("googlenet", pretrained=False, seed=0).module.state_dict()
    assert not any(k.startswith("aux") for k in state)
    path = places["root"] / "googlenet.pth"
    torch.save(state, path)
    spec = load_model("googlenet", weights=path)
    assert spec.module.aux1 is None and spec.module.transform_input
    assert same_state(spec.module, state)


def test_sha256_prefix_in_name():
    assert W.sha256_prefix_in_name("alexnet-owt-7be5be79.pth") == "7be5be79"
    assert W.sha256_prefix_in_name("my-weights-final.pth") is None
    assert W.sha256_prefix_in_name("resnet18-f37072fd.txt") is None


def classify(spec, image_paths):
    from PIL import Image
    from torchvision.transforms import functional as TF

    batch = []
    for p in image_paths:
        img = Image.open(p).convert("RGB")
        img = TF.center_crop(TF.resize(img, 256), spec.preprocessing.input_size_px)
        batch.append(TF.to_tensor(img))
    with torch.no_grad():
        return spec.module(spec.preprocessing.normalise(torch.stack(batch)))


@pytest.mark.slow
@pytest.mark.parametrize("arch, min_hits", [("squeezenet1_0", 9), ("mobilenet_v2", 10)])
def test_real_weights_from_the_weights_dir_classify(arch, min_hits, weights_dir, imagenet_sample_dir):
    """Real ImageNet weights found through ARTIPHYS_WEIGHTS_DIR give the right class in the
    top 5 for most of 12 sample images (file order = class index; measured 10 and 12);
    the untrained twin does not."""
    spec = load_model(arch)
    assert Path(spec.weights_path).parent == weights_dir
    files = sorted(imagenet_sample_dir.glob("*.jpg"))
    picks = list(range(0, 1000, 83))[:12]
    images = [files[i] for i in picks]
    top5 = classify(spec, images).topk(5, dim=1).indices.tolist()
    assert sum(int(i in row) for i, row in zip(picks, top5)) >= min_hits
    top5u = classify(load_model(arch, pretrained=False), images).topk(5, dim=1).indices.tolist()
    assert sum(int(i in row) for i, row in zip(picks, top5u)) <= 2
