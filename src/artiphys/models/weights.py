"""Finding, verifying and loading weight files.

Resolution order for ``pretrained=True`` (:func:`resolve_weights`):

1. an explicit file (``weights=`` / ``--weights FILE``);
2. weights directories: the environment variable ``ARTIPHYS_WEIGHTS_DIR`` (one or more
   folders separated by ``os.pathsep``), then the ``weights_dir`` key of the config file
   (``$ARTIPHYS_CONFIG``, default ``~/.config/artiphys/config.json``);
3. torch hub's cache, ``torch.hub.get_dir()/checkpoints``;
4. a download of the architecture's official file into that cache (:func:`download_weights`;
   skipped when ``ARTIPHYS_OFFLINE=1``);
5. otherwise :class:`~artiphys.errors.WeightsError` saying where to put the file.

In steps 2 and 3 a folder provides a file named in torchvision's pattern
``<architecture>-<hex>.pth``, where ``<hex>`` (8 or more hex digits) starts the file's
sha256: the official name is preferred, but any such file for the architecture is used.
Whenever a file name carries such a prefix it is verified. Files are always read with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from artiphys.errors import ArtiphysError, WeightsError

WEIGHTS_DIR_ENV = "ARTIPHYS_WEIGHTS_DIR"
CONFIG_ENV = "ARTIPHYS_CONFIG"
OFFLINE_ENV = "ARTIPHYS_OFFLINE"
DEFAULT_CONFIG = Path("~/.config/artiphys/config.json")
WEIGHT_SUFFIXES = (".pth", ".pt")
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})$")


@dataclass(frozen=True)
class WeightsFile:
    """A verified weights file: its path, full sha256 and where it was found."""

    path: Path
    sha256: str
    source: str


# ---- config -----------------------------------------------------------------------------

def config_path() -> Path:
    """The config file: ``$ARTIPHYS_CONFIG`` or ``~/.config/artiphys/config.json``."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()


def read_config() -> dict:
    """The config file's JSON object, or ``{}`` when there is no file."""
    path = config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtiphysError(f"cannot read config file {path}: {exc}; fix the JSON or set "
                            f"{CONFIG_ENV} to another file") from None
    if not isinstance(data, dict):
        raise ArtiphysError(f"config file {path} must hold a JSON object like "
                            '{"weights_dir": "/path/to/weights"}')
    return data


def weights_dirs() -> list[tuple[Path, str]]:
    """The weights directories to search, in order, each with a label for messages."""
    out = []
    for part in filter(None, os.environ.get(WEIGHTS_DIR_ENV, "").split(os.pathsep)):
        out.append((Path(part).expanduser(), f"{WEIGHTS_DIR_ENV}={part}"))
    configured = read_config().get("weights_dir")
    if configured:
        out.append((Path(str(configured)).expanduser(), f"weights_dir in {config_path()}"))
    return out


def hub_checkpoint_dir() -> Path:
    """torch hub's cache of weight files (``torch.hub.get_dir()/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


# ---- files ------------------------------------------------------------------------------

def sha256_prefix_in_name(path: str | Path) -> str | None:
    """The sha256 prefix carried by a file name (``alexnet-7be5be79.pth`` -> ``7be5be79``)."""
    return _match_name(Path(path))[1]


def _match_name(path: Path) -> tuple[str | None, str | None]:
    if path.suffix not in WEIGHT_SUFFIXES:
        return None, None
    m = _HASH_IN_NAME.search(path.stem)
    if not m:
        return path.stem, None
    return path.stem[:m.start()], m.group(1)


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """Full sha256 hex digest of a file (cached by path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def verify_file(path: str | Path, source: str = "explicit file") -> WeightsFile:
    """Check a weights file exists and, when its name carries a sha256 prefix, matches it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; check the path")
    digest = file_sha256(path)
    prefix = sha256_prefix_in_name(path)
    if prefix is not None and not digest.startswith(prefix):
        raise WeightsError(
            f"weights file {path} is corrupt, truncated or misnamed: its name says sha256 "
            f"starts with {prefix} but the file's sha256 is {digest[:len(prefix)]}...; "
            f"copy it again, or rename it to <architecture>-{digest[:8]}.pth if its content "
            f"is right")
    return WeightsFile(path=path, sha256=digest, source=source)


def find_in_dir(folder: Path, names: Sequence[str], preferred: Iterable[str] = ()) -> Path | None:
    """A file ``<name>-<hex>.pth`` in ``folder`` for any of ``names`` (official file names in
    ``preferred`` first, then alphabetical), or None."""
    if not folder.is_dir():
        return None
    for fname in preferred:
        if (folder / fname).is_file():
            return folder / fname
    found = []
    for p in sorted(folder.iterdir()):
        stem, prefix = _match_name(p)
        if prefix is not None and stem in names and p.is_file():
            found.append(p)
    return found[0] if found else None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict with ``torch.load(weights_only=True)``, unwrapping common checkpoint
    layouts (``{"state_dict": ...}``, ``{"model": ...}``) and DataParallel's ``module.``."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            hint = ("it holds pickled Python objects, not only tensors; save it with "
                    "torch.save(model.state_dict(), path)")
        else:
            hint = "it is truncated or not a PyTorch file; copy or download it again"
        raise WeightsError(f"cannot read weights file {path}: {hint} ({reason[:160]})") from None
    for key in ("state_dict", "model_state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and not isinstance(
                obj.get(key), torch.Tensor):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightsError(f"weights file {path} does not hold a state dict (a mapping of "
                           f"parameter names to tensors); save one with "
                           f"torch.save(model.state_dict(), path)")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _few(items: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def load_into(module: nn.Module, path: str | Path, architecture: str, *,
              optional_prefixes: Sequence[str] = ()) -> None:
    """Load the state dict in ``path`` into ``module``, failing with one clear line when it
    is for another architecture. Keys under ``optional_prefixes`` (e.g. auxiliary heads)
    may be missing from the file."""
    state = load_state_dict(path)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.startswith(tuple(optional_prefixes))]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys ({_few(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatches ({_few(mismatched, 2)})")
        raise WeightsError(
            f"weights file {path} does not fit architecture {architecture!r}: "
            f"{'; '.join(problems)}. Is it the file of another model? Pass the model it "
            f"belongs to, or the right file")
    module.load_state_dict(state, strict=False)


# ---- download ---------------------------------------------------------------------------

def download_weights(url: str, dest_dir: Path) -> Path:
    """Download ``url`` into ``dest_dir`` (verifying the sha256 prefix in its name) and return
    the file. The one step that touches the network; tests replace it."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / Path(url).name
    prefix = sha256_prefix_in_name(dest)
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=prefix, progress=True)
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"download of {url} failed ({reason})") from None
    return dest


def resolve_weights(architecture: str, *, explicit: str | Path | None = None,
                    official_url: str | None = None,
                    file_stems: Sequence[str] = ()) -> WeightsFile:
    """Find and verify the weights file for ``architecture`` (see the module docstring).

    Parameters
    ----------
    architecture : str
        Architecture name, the stem of acceptable file names (``"alexnet"``).
    explicit : path, optional
        A file given by the user; used as is (verified when its name carries a prefix).
    official_url : str, optional
        Where the official file lives; its name is preferred in folders and it is the
        download's source.
    file_stems : sequence of str
        Further acceptable stems (torchvision's official ``inception_v3_google``).
    """
    if explicit is not None:
        return verify_file(explicit)
    official = Path(official_url).name if official_url else None
    stems = [architecture, *file_stems]
    if official:
        official_stem, _ = _match_name(Path(official))
        if official_stem and official_stem not in stems:
            stems.append(official_stem)
    preferred = [official] if official else []
    searched = []
    folders = weights_dirs() + [(hub_checkpoint_dir(), "torch hub cache")]
    for folder, label in folders:
        path = find_in_dir(folder, stems, preferred)
        if path is not None:
            return verify_file(path, source=label)
        where = label if label.startswith(WEIGHTS_DIR_ENV) else f"{label} {folder}"
        searched.append(where + ("" if folder.is_dir() else " (not a folder)"))
    if not any(label.startswith(WEIGHTS_DIR_ENV) for _, label in folders):
        searched.insert(0, f"{WEIGHTS_DIR_ENV} (not set)")
    download_note = "no download source is known"
    if official_url:
        if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
            download_note = f"download skipped ({OFFLINE_ENV} is set)"
        else:
            try:
                path = download_weights(official_url, hub_checkpoint_dir())
                return verify_file(path, source=f"downloaded from {official_url}")
            except WeightsError as exc:
                download_note = str(exc)
    example = official or f"{architecture}-<first 8 hex digits of its sha256>.pth"
    raise WeightsError(
        f"no weights found for {architecture!r}: searched {'; '.join(searched)}; "
        f"{download_note}. Put the file (e.g. {example}, or any {architecture}-<sha256 "
        f"prefix>.pth) in a folder named by {WEIGHTS_DIR_ENV}, pass --weights FILE, or use "
        f"--untrained")
