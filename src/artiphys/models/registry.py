"""Models by name: lazy factories with preprocessing metadata.

Names
-----
``alexnet``, ``vgg16``, ``resnet50``, ... (every torchvision classification model; also
written ``torchvision:alexnet``); ``timm:<name>`` (any timm model, when timm is installed);
``package.module:factory`` (a function returning an ``nn.Module`` or a ``ModelSpec``);
built-in analytic models (``v1bank``, ``neuromatch_conv``, ``simple_cell``,
``energy_cell``, ``hw_cell``, ``dog_cell``, see :mod:`artiphys.models.analytic`) and
anything added with :func:`register_model`. A user ``nn.Module`` may be passed instead of
a name.

Conditions
----------
Zoo models (torchvision, timm) are ``"trained"`` by default (weights resolved by
:func:`artiphys.models.weights.resolve_weights`) or ``"untrained"`` with
``pretrained=False`` (random initialisation of the same architecture under ``seed``).
Analytic models are ``"analytic"``; custom factories and modules ``"custom"`` (as built).
An explicit ``weights`` file implies ``pretrained`` and gives ``"trained"`` for any model;
``pretrained=False`` re-initialises any model under ``seed``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from artiphys.errors import ArtiphysError, UnknownModelError, WeightsError, close_matches
from artiphys.models import analytic
from artiphys.models.controls import reinitialize
from artiphys.models.layers import default_aliases
from artiphys.models.spec import ModelSpec, Preprocessing
from artiphys.models.weights import OFFLINE_ENV, load_into, resolve_weights


@dataclass(frozen=True)
class ModelEntry:
    """A registered name: a zero-argument factory, its preprocessing and its condition."""

    name: str
    factory: Callable[[], nn.Module]
    preprocessing: Preprocessing
    condition: str = "custom"


_REGISTRY: dict[str, ModelEntry] = {}

DEMO_MODEL = "v1bank"
"""The built-in model ``make demo`` runs (analytic: no weights needed)."""


def register_model(name: str, *, preprocessing: Preprocessing | None = None,
                   condition: str = "custom"):
    """Decorator: register ``factory() -> nn.Module`` under ``name``.

    >>> @register_model("tiny", preprocessing=Preprocessing(input_size_px=32))
    ... def tiny():
    ...     return nn.Conv2d(3, 4, 3)
    """

    def deco(factory):
        _REGISTRY[name] = ModelEntry(name, factory, preprocessing or Preprocessing(), condition)
        return factory

    return deco


for _name, _factory in analytic.ANALYTIC_FACTORIES.items():
    register_model(_name, preprocessing=analytic.CONTRAST_PREPROCESSING,
                   condition="analytic")(_factory)


def torchvision_models() -> list[str]:
    """Names of torchvision's classification models."""
    from torchvision import models

    return sorted(models.list_models(module=models))


def available_models(include_timm: bool = False) -> list[str]:
    """Every name :func:`load_model` accepts (timm's only when asked, as ``timm:<name>``)."""
    names = sorted(_REGISTRY) + torchvision_models()
    if include_timm:
        with contextlib.suppress(ImportError):
            import timm

            names += [f"timm:{n}" for n in timm.list_models()]
    return names


@contextlib.contextmanager
def _seeded(seed: int | None):
    """Run the body with torch's CPU generator seeded, leaving the global state untouched."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield


def load_model(name_or_module: str | nn.Module | ModelSpec, *, pretrained: bool | None = None,
               weights: str | os.PathLike | None = None, seed: int = 0,
               input_size: int | None = None) -> ModelSpec:
    """Load a model by name (or wrap a module) as a :class:`ModelSpec`, in eval mode on CPU.

    Parameters
    ----------
    name_or_module : str, nn.Module or ModelSpec
        See the module docstring for names.
    pretrained : bool, optional
        None (default): trained weights for zoo models, the model as built otherwise.
        True: trained weights (zoo) / as built. False: random initialisation under ``seed``.
    weights : path, optional
        An explicit state-dict file; implies ``pretrained``.
    seed : int
        Seed of random initialisation (untrained models, custom factories).
    input_size : int, optional
        Overrides the input size in px (227 for the AlexNet runs of Pospisil et al. 2018).

    Raises
    ------
    UnknownModelError
        For a name that resolves to nothing (the closest names are listed).
    WeightsError
        For missing, corrupt, truncated or mismatched weight files.
    """
    if weights is not None and pretrained is False:
        raise ArtiphysError("both untrained and a weights file were asked for; drop "
                            "--untrained to load the file, or --weights to get random weights")
    if input_size is not None and int(input_size) < 1:
        raise ArtiphysError(f"input size must be a positive number of px, not {input_size}")
    if isinstance(name_or_module, ModelSpec | nn.Module):
        spec = _from_module(name_or_module, pretrained, weights, seed)
    elif isinstance(name_or_module, str):
        spec = _from_name(name_or_module.strip(), pretrained, weights, seed)
    else:
        raise TypeError(f"expected a model name or torch.nn.Module, got "
                        f"{type(name_or_module).__name__}")
    if input_size is not None:
        spec = spec.with_input_size(int(input_size))
    spec.module.to("cpu").eval()
    return replace(spec, aliases={**default_aliases(spec.module), **(spec.aliases or {})})


def _from_name(name: str, pretrained, weights, seed) -> ModelSpec:
    if name.startswith("timm:"):
        return _load_timm(name[len("timm:"):], pretrained, weights, seed)
    if name.startswith("torchvision:"):
        return _load_torchvision(name[len("torchvision:"):], pretrained, weights, seed)
    if name in _REGISTRY:
        return _load_registered(_REGISTRY[name], pretrained, weights, seed)
    if ":" in name:
        return _load_factory(name, pretrained, weights, seed)
    tv = torchvision_models()
    if name in tv or name.lower() in tv:
        return _load_torchvision(name.lower(), pretrained, weights, seed)
    raise UnknownModelError(
        f"unknown model {name!r}.{close_matches(name, list(_REGISTRY) + tv)} Run `artiphys "
        f"models` to list names; use timm:<name> for timm models or package.module:factory "
        f"for your own")


# ---- torchvision --------------------------------------------------------------------------

_AUX_PREFIXES = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}


def _torchvision_kwargs(arch: str, default_weights, trained: bool) -> dict:
    """Builder arguments that make the architecture match its official weights (the same
    for the untrained twin, so trained and untrained differ only in their weights)."""
    kwargs = {}
    if arch in _AUX_PREFIXES:  # ported weights expect transform_input; aux heads dropped later
        kwargs.update(transform_input=True, aux_logits=trained, init_weights=not trained)
    if arch.startswith("vit_"):
        kwargs["image_size"] = int(default_weights.meta["min_size"][0])
    if arch.startswith("maxvit_"):
        kwargs["input_size"] = tuple(default_weights.meta["min_size"])
    return kwargs


def _drop_aux(arch: str, module: nn.Module) -> None:
    if arch == "googlenet":
        module.aux_logits, module.aux1, module.aux2 = False, None, None
    elif arch == "inception_v3":
        module.aux_logits, module.AuxLogits = False, None


def _load_torchvision(arch: str, pretrained, weights, seed) -> ModelSpec:
    from torchvision import models

    if arch not in torchvision_models():
        raise UnknownModelError(f"torchvision has no classification model {arch!r}."
                                f"{close_matches(arch, torchvision_models())}")
    default = models.get_model_weights(arch).DEFAULT
    t = default.transforms()
    prep = Preprocessing(input_size_px=int(t.crop_size[0]), mean=tuple(t.mean), std=tuple(t.std))
    trained = pretrained is not False or weights is not None
    kwargs = _torchvision_kwargs(arch, default, trained)
    if not trained:
        with _seeded(seed):
            module = models.get_model(arch, weights=None, **kwargs)
        return ModelSpec(arch, module, prep, condition="untrained", seed=seed)
    found = resolve_weights(arch, explicit=weights, official_url=default.url)
    with _seeded(seed):
        module = models.get_model(arch, weights=None, **kwargs)
    load_into(module, found.path, arch, optional_prefixes=_AUX_PREFIXES.get(arch, ()))
    _drop_aux(arch, module)
    return ModelSpec(arch, module, prep, condition="trained", weights_path=str(found.path),
                     weights_sha256=found.sha256)


# ---- timm ---------------------------------------------------------------------------------

def _load_timm(tname: str, pretrained, weights, seed) -> ModelSpec:
    try:
        import timm
    except ImportError:
        raise UnknownModelError(f"model 'timm:{tname}' needs timm, which is not installed; "
                                f"install it with pip install 'artiphys[timm]'") from None
    if not tname or not timm.is_model(tname):
        hint = close_matches(tname, timm.list_models())
        raise UnknownModelError(f"timm has no model {tname!r}.{hint} List timm's models with "
                                f"`artiphys models --timm`")
    name = f"timm:{tname}"
    trained = pretrained is not False or weights is not None
    with _seeded(seed):
        module = timm.create_model(tname, pretrained=False)
    cfg = dict(getattr(module, "pretrained_cfg", None) or {})
    prep = Preprocessing(input_size_px=int(cfg.get("input_size", (3, 224, 224))[-1]),
                         mean=tuple(cfg.get("mean", Preprocessing().mean)),
                         std=tuple(cfg.get("std", Preprocessing().std)))
    if not trained:
        return ModelSpec(name, module, prep, condition="untrained", seed=seed)
    arch = tname.split(".")[0]
    try:
        found = resolve_weights(tname, explicit=weights, file_stems=[arch])
    except WeightsError as not_found:
        if weights is not None or os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
            raise
        try:  # timm's own download (Hugging Face hub cache)
            with _seeded(seed):
                module = timm.create_model(tname, pretrained=True)
        except Exception as exc:  # noqa: BLE001 - hub errors come in many types
            text = str(exc).strip()
            reason = text.splitlines()[0][:120] if text else type(exc).__name__
            raise WeightsError(f"{not_found}; timm's own download failed too ({reason})") from None
        source = cfg.get("hf_hub_id") or cfg.get("url") or "timm"
        return ModelSpec(name, module, prep, condition="trained", weights_path=f"timm:{source}")
    load_into(module, found.path, name)
    return ModelSpec(name, module, prep, condition="trained", weights_path=str(found.path),
                     weights_sha256=found.sha256)


# ---- registered, custom factories and modules ---------------------------------------------

def _finish_custom(spec: ModelSpec, pretrained, weights, seed) -> ModelSpec:
    """Apply an explicit weights file or re-initialisation to a built model."""
    if weights is not None:
        found = resolve_weights(spec.name, explicit=weights)
        load_into(spec.module, found.path, spec.name)
        return replace(spec, condition="trained", weights_path=str(found.path),
                       weights_sha256=found.sha256, seed=None)
    if pretrained is False:
        reinitialize(spec.module, seed)
        return replace(spec, condition="untrained", weights_path=None, weights_sha256=None,
                       seed=seed)
    return spec


def _load_registered(entry: ModelEntry, pretrained, weights, seed) -> ModelSpec:
    with _seeded(seed):
        built = entry.factory()
    spec = _as_built_spec(entry.name, built, entry.preprocessing, entry.condition)
    if entry.condition != "analytic":
        spec = replace(spec, seed=seed)
    return _finish_custom(spec, pretrained, weights, seed)


def _load_factory(name: str, pretrained, weights, seed) -> ModelSpec:
    modname, _, attr = name.partition(":")
    if not modname or not attr:
        raise UnknownModelError(f"cannot read model {name!r}: write a custom model as "
                                f"package.module:factory")
    try:
        mod = importlib.import_module(modname)
    except ImportError as exc:
        raise UnknownModelError(f"cannot import module {modname!r} for model {name!r} ({exc}); "
                                f"put its package on PYTHONPATH or fix the name") from None
    factory = mod
    for part in attr.split("."):
        if not hasattr(factory, part):
            public = [n for n in dir(mod) if not n.startswith("_")]
            raise UnknownModelError(f"module {modname!r} has no {attr!r}."
                                    f"{close_matches(attr, public)} Name a function that "
                                    f"returns an nn.Module")
        factory = getattr(factory, part)
    if not callable(factory):
        raise UnknownModelError(f"{name!r} is not callable; name a function that returns an "
                                f"nn.Module")
    with _seeded(seed):
        try:
            built = factory()
        except Exception as exc:  # the user's code: say whose it is, keep the cause
            raise UnknownModelError(f"the factory of model {name!r} raised "
                                    f"{type(exc).__name__}: {exc}; fix the factory (call it "
                                    "in Python to see its traceback)") from exc
    spec = replace(_as_built_spec(name, built, Preprocessing(), "custom"), seed=seed)
    return _finish_custom(spec, pretrained, weights, seed)


def _as_built_spec(name: str, built, preprocessing: Preprocessing, condition: str) -> ModelSpec:
    if isinstance(built, ModelSpec):
        return replace(built, name=name)
    if not isinstance(built, nn.Module):
        raise UnknownModelError(f"factory for {name!r} returned {type(built).__name__}, not a "
                                f"torch.nn.Module or ModelSpec")
    return ModelSpec(name, built, preprocessing, condition=condition)


def _from_module(model: nn.Module | ModelSpec, pretrained, weights, seed) -> ModelSpec:
    spec = model if isinstance(model, ModelSpec) else ModelSpec(
        "custom", model, Preprocessing(), condition="custom")
    if weights is not None or pretrained is False:  # never change the caller's module
        spec = replace(spec, module=copy.deepcopy(spec.module))
    return _finish_custom(spec, pretrained, weights, seed)
