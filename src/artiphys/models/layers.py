"""Layer addressing: resolve a layer name or paper alias to a module.

(Minimal core; the layer table with shapes and receptive fields is built on top of it.)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from artiphys.errors import UnknownLayerError, close_matches
from artiphys.models.spec import ModelSpec, as_spec


@dataclass(frozen=True)
class LayerRef:
    """A resolved layer: its module path (stable name), optional alias, and module."""

    name: str
    module: nn.Module
    alias: str | None = None

    @property
    def label(self) -> str:
        """The alias when there is one, else the module path (used as the ``layer`` coord)."""
        return self.alias or self.name


def resolve_layer(model: ModelSpec | nn.Module, layer: str | LayerRef | nn.Module) -> LayerRef:
    """Resolve a module path (``"features.3"``), alias (``"conv2"``) or module to a LayerRef.

    Raises
    ------
    UnknownLayerError
        With the closest names listed, when the layer does not exist.
    """
    spec = as_spec(model)
    if isinstance(layer, LayerRef):
        return layer
    modules = dict(spec.module.named_modules())
    reverse = {path: alias for alias, path in spec.aliases.items()}
    if isinstance(layer, nn.Module):
        for path, mod in modules.items():
            if mod is layer:
                return LayerRef(path, mod, reverse.get(path))
        raise UnknownLayerError("the given module is not part of this model")
    if layer in spec.aliases:
        path = spec.aliases[layer]
        return LayerRef(path, modules[path], layer)
    if layer in modules and layer != "":
        return LayerRef(layer, modules[layer], reverse.get(layer))
    names = [n for n in modules if n] + list(spec.aliases)
    raise UnknownLayerError(
        f"model {spec.name!r} has no layer {layer!r}.{close_matches(layer, names)} "
        f"Run `artiphys layers {spec.name}` to list its layers.")


def default_aliases(module: nn.Module) -> dict[str, str]:
    """Paper-style aliases (``conv1``, ``relu1``, ``pool1``, ``norm1``, ..., ``fc6``, ``relu6``,
    ``fc8``, ``prob``) for AlexNet-like nets, mapped to module paths; ``{}`` when none apply."""
    return {}
