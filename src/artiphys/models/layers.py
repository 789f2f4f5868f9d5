"""Layer addressing and the layer table.

A *layer name* is one string (parsed here, at the edge; inside the library a layer is a
:class:`LayerRef`)::

    <module path or alias>[@<call>][:<view>]

``features.3`` / ``conv2``
    The output of that module; for a module that runs several times per forward pass
    (ResNet's shared ``relu``) its **last** call: the call that ends the block, which is
    what a recording of the module has always stored.
``layer1.0.relu@0``
    Call ``0`` (0-based, in execution order) of the module; ``@k`` of the last call is the
    same tensor as the plain name.
``features.3:linear``
    The layer's linear output: its output before its own final rectifiers (for a fire
    module the concatenated expand convolutions before their ReLUs; for a ResNet block the
    sum ``out + identity`` before the last ReLU; see :mod:`artiphys.models.virtual`).

``resolve_layer`` turns a name (or a module) into a :class:`LayerRef`; ``list_layers``
lists every module output in execution order with its shape, receptive-field geometry
and paper sublayer (see ``layer_table.py``, ``receptive_field.py``, ``sublayers.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from torch import nn

from artiphys.errors import UnknownLayerError, close_matches
from artiphys.models.spec import ModelSpec, as_spec

_ADDRESS = re.compile(r"^(?P<base>.+?)(?:@(?P<call>\d+))?(?::(?P<view>[A-Za-z_]\w*))?$")


@dataclass(frozen=True)
class LayerRef:
    """A resolved layer.

    Attributes
    ----------
    name : str
        The layer's canonical name: module path plus the ``@call`` / ``:view`` suffixes it
        was given with (``"layer1.0.relu@0"``, ``"features.3:linear"``).
    module : nn.Module
        The module at :attr:`path`.
    alias : str or None
        Paper alias of the module (``"conv2"``), if any.
    call : int or None
        Which call of the module (0-based); None: its last call (the rule for plain names).
    view : str or None
        None for the module's output; ``"linear"`` for its linear output.
    """

    name: str
    module: nn.Module
    alias: str | None = None
    call: int | None = None
    view: str | None = None

    @property
    def path(self) -> str:
        """The module path (``name`` without its ``@call`` / ``:view`` suffixes)."""
        return _split_suffix(self.name)[0] if (self.call is not None or self.view) else self.name

    @property
    def suffix(self) -> str:
        return (f"@{self.call}" if self.call is not None else "") + (
            f":{self.view}" if self.view else "")

    @property
    def label(self) -> str:
        """The alias (with suffixes) when there is one, else the name; the ``layer`` coord."""
        return self.alias + self.suffix if self.alias else self.name

    @property
    def is_plain(self) -> bool:
        """True for a module's output at its last call (what a forward hook's last call sees)."""
        return self.call is None and self.view is None


def _split_suffix(name: str) -> tuple[str, int | None, str | None]:
    m = _ADDRESS.match(name)
    if m is None:
        return name, None, None
    call = m.group("call")
    return m.group("base"), (int(call) if call is not None else None), m.group("view")


def layer_name(path: str, call: int | None = None, view: str | None = None) -> str:
    """The layer name of call ``call`` (None: the last) of module ``path``, with a view."""
    return path + (f"@{call}" if call is not None else "") + (f":{view}" if view else "")


def resolve_layer(model: ModelSpec | nn.Module, layer: str | LayerRef | nn.Module) -> LayerRef:
    """Resolve a layer name (module path, alias, with ``@call`` / ``:view``; see module doc)
    or a module to a LayerRef.

    Raises
    ------
    UnknownLayerError
        With the closest names listed, when the layer does not exist or the view is unknown.
    """
    from artiphys.models.virtual import VIEWS

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
    plain = _plain_ref(spec, modules, reverse, layer)
    if plain is not None:
        return plain
    base, call, view = _split_suffix(str(layer))
    ref = _plain_ref(spec, modules, reverse, base) if (call is not None or view) else None
    if ref is not None:
        if view is not None and view not in VIEWS:
            raise UnknownLayerError(
                f"layer {layer!r}: unknown view {view!r}; the views are "
                f"{', '.join(':' + v for v in VIEWS)} (e.g. {ref.name}:linear)")
        return LayerRef(layer_name(ref.name, call, view), ref.module, ref.alias, call, view)
    names = [n for n in modules if n] + list(spec.aliases)
    raise UnknownLayerError(
        f"model {spec.name!r} has no layer {layer!r}.{close_matches(base, names)} "
        f"Run `artiphys layers {spec.name}` to list its layers (a name may end in @CALL for "
        "one call of a shared module, or :linear for the output before the rectifier).")


def _plain_ref(spec: ModelSpec, modules: dict, reverse: dict, name: str) -> LayerRef | None:
    if name in spec.aliases:
        path = spec.aliases[name]
        return LayerRef(path, modules[path], name)
    if name in modules and name != "":
        return LayerRef(name, modules[name], reverse.get(name))
    return None


def spec_with_aliases(model: ModelSpec | nn.Module) -> ModelSpec:
    """``as_spec(model)``, with :func:`default_aliases` filled in when it has none."""
    spec = as_spec(model)
    if not spec.aliases:
        aliases = default_aliases(spec.module)
        if aliases:
            spec = replace(spec, aliases=aliases)
    return spec


_PLAIN_FEATURES = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.LocalResponseNorm,
                   nn.BatchNorm2d, nn.Dropout)
_PLAIN_CLASSIFIER = (nn.Linear, nn.ReLU, nn.Dropout, nn.Softmax, nn.Flatten)


def default_aliases(module: nn.Module) -> dict[str, str]:
    """Paper-style aliases mapped to module paths; ``{}`` when none apply.

    For AlexNet-like nets (a plain ``features`` Sequential of convs, ReLUs, pools and
    norms, and a ``classifier`` Sequential of linear layers) the Caffe names of Krizhevsky
    et al. 2012 as used by Pospisil et al. 2018: ``conv1, relu1, norm1, pool1, ..., conv5,
    relu5, pool5, fc6, relu6, fc7, relu7, fc8`` and ``prob`` for an explicit ``nn.Softmax``.
    A layer takes the number of the last conv / fc before it; dropouts and batch norms are
    not aliased. torchvision's AlexNet has no LRN layers, so it has no ``norm1``/``norm2``;
    its softmax is not part of the model, so it has no ``prob``.

    For torchvision's ``VGG`` the Caffe VGG names (Simonyan & Zisserman 2015): ``conv1_1,
    relu1_1, conv1_2, relu1_2, pool1, ..., conv5_4, relu5_4, pool5, fc6, relu6, fc7, relu7,
    fc8``.
    """
    features = getattr(module, "features", None)
    classifier = getattr(module, "classifier", None)
    if not (isinstance(features, nn.Sequential) and isinstance(classifier, nn.Sequential)):
        return {}
    if not all(isinstance(m, _PLAIN_FEATURES) for m in features):
        return {}
    if not all(isinstance(m, _PLAIN_CLASSIFIER) for m in classifier):
        return {}
    vgg = type(module).__name__ == "VGG"
    aliases: dict[str, str] = {}

    def put(alias: str, path: str) -> None:
        aliases.setdefault(alias, path)

    conv = block = within = 0
    block = 1
    for i, m in enumerate(features):
        path = f"features.{i}"
        tag = f"{block}_{within}" if vgg else str(conv)
        if isinstance(m, nn.Conv2d):
            conv += 1
            within += 1
            put(f"conv{block}_{within}" if vgg else f"conv{conv}", path)
        elif isinstance(m, nn.ReLU) and conv:
            put(f"relu{tag}", path)
        elif isinstance(m, nn.LocalResponseNorm) and conv:
            put(f"norm{block if vgg else conv}", path)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) and conv:
            put(f"pool{block if vgg else conv}", path)
            if vgg:
                block += 1
                within = 0
    fc = 5 if vgg else conv
    seen_fc = False
    for i, m in enumerate(classifier):
        path = f"classifier.{i}"
        if isinstance(m, nn.Linear):
            fc += 1
            seen_fc = True
            put(f"fc{fc}", path)
        elif isinstance(m, nn.ReLU) and seen_fc:
            put(f"relu{fc}", path)
        elif isinstance(m, nn.Softmax):
            put("prob", path)
    return aliases


# the layer table (layer_table.py) and the paper sublayers (sublayers.py), importable here
from artiphys.models.layer_table import (  # noqa: F401
    LayerInfo,
    closest_rf_layer,
    format_layer_table,
    list_layers,
    select_layer_rows,
)
from artiphys.models.sublayers import first_sublayers, paper_sublayers  # noqa: F401
