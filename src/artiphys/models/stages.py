"""What each operation of a network is, in the terms of Pospisil et al. (2018, Fig. 2).

Pospisil, Pasupathy & Bair split AlexNet into eight *major layers*, each beginning with a
linear kernel (a convolution or a fully connected layer), and each major layer into
*sublayers*: the kernel's linear output, the rectifier, local response normalisation, max
pooling (and the final softmax). :func:`node_stage` and :func:`module_stage` put every
operation of any network into one of these stages, so the sublayers can be found in
networks the paper never saw.

Stages
------
``kernel``      convolution or fully connected layer (a linear kernel: starts a major layer)
``affine``      per-channel affine map in eval mode (batch norm): still the linear output
``rectifier``   pointwise nonlinearity (ReLU and its relatives, GELU, SiLU, sigmoid, tanh)
``pool``        spatial pooling (max, average, adaptive)
``norm``        normalisation across channels or space (LRN, group / layer / instance norm)
``softmax``     softmax or log-softmax
``identity``    a no-op in eval mode (dropout, ``nn.Identity``, stochastic depth, ``clone``)
``reshape``     flatten / view / reshape
``merge``       concatenation or sum of several tensors (a branching block joins there)
``other``       anything else
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["STAGES", "module_stage", "node_stage", "tensor_args"]

STAGES = ("kernel", "affine", "rectifier", "pool", "norm", "softmax", "identity", "reshape",
          "merge", "other")

_RECTIFIER_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU,
                      nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus,
                      nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid)
_RECTIFIER_NAMES = {"relu", "relu6", "leaky_relu", "prelu", "rrelu", "elu", "selu", "celu",
                    "gelu", "silu", "mish", "hardswish", "softplus", "sigmoid", "tanh",
                    "hardtanh", "hardsigmoid"}
_POOL_MODULES = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                 nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
                 nn.modules.pooling._LPPoolNd)
_POOL_NAMES = {"max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d",
               "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
               "adaptive_max_pool1d", "adaptive_max_pool2d", "lp_pool2d"}
_NORM_MODULES = (nn.LocalResponseNorm, nn.GroupNorm, nn.LayerNorm,
                 nn.modules.instancenorm._InstanceNorm, nn.CrossMapLRN2d)
_NORM_NAMES = {"local_response_norm", "group_norm", "layer_norm", "instance_norm",
               "normalize"}
_IDENTITY_MODULES = (nn.Identity, nn.modules.dropout._DropoutNd)
_IDENTITY_CLASS_NAMES = {"StochasticDepth", "DropPath", "DropBlock2d"}
_IDENTITY_NAMES = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                   "feature_alpha_dropout", "clone", "contiguous", "detach", "identity",
                   "stochastic_depth", "drop_path"}
_RESHAPE_NAMES = {"flatten", "view", "reshape"}
_ADD = {operator.add, operator.iadd, torch.add, "add", "add_"}


def module_stage(mod: nn.Module) -> str:
    """The stage (see module doc) of a leaf module's output."""
    if isinstance(mod, (nn.modules.conv._ConvNd, nn.Linear, nn.Bilinear)):
        return "kernel"
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        return "affine"
    if isinstance(mod, _RECTIFIER_MODULES):
        return "rectifier"
    if isinstance(mod, _POOL_MODULES):
        return "pool"
    if isinstance(mod, _NORM_MODULES) or type(mod).__name__ in ("LayerNorm2d",):
        return "norm"
    if isinstance(mod, (nn.Softmax, nn.LogSoftmax, nn.Softmax2d)):
        return "softmax"
    if isinstance(mod, _IDENTITY_MODULES) or type(mod).__name__ in _IDENTITY_CLASS_NAMES:
        return "identity"
    if isinstance(mod, (nn.Flatten, nn.Unflatten)):
        return "reshape"
    return "other"


def _target_name(node: fx.Node) -> str:
    target = node.target
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    return name.rstrip("_") if name.endswith("_") and not name.startswith("__") else name


def tensor_args(node: fx.Node) -> list[fx.Node]:
    """The node's inputs that are tensors computed by the graph (not parameters/buffers)."""
    return [a for a in node.all_input_nodes if a.op != "get_attr"]


def node_stage(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    """The stage (see module doc) of an fx node's output; ``modules`` from
    ``graph_module.named_modules()``."""
    if node.op == "call_module":
        return module_stage(modules[node.target])
    if node.op not in ("call_function", "call_method"):
        return "other"
    name = _target_name(node)
    if node.target in (F.conv1d, F.conv2d, F.conv3d, F.linear) or name in ("conv2d", "linear"):
        return "kernel"
    if name == "batch_norm":
        return "affine"
    if name in _RECTIFIER_NAMES:
        return "rectifier"
    if name in _POOL_NAMES:
        return "pool"
    if name in _NORM_NAMES:
        return "norm"
    if name in ("softmax", "log_softmax"):
        return "softmax"
    if name in _IDENTITY_NAMES:
        return "identity"
    if name in _RESHAPE_NAMES or node.target is torch.flatten:
        return "reshape"
    if node.target is torch.cat or name in ("cat", "concat", "concatenate"):
        return "merge"
    if (node.target in _ADD or name in ("add", "iadd")) and len(tensor_args(node)) >= 2:
        return "merge"
    return "other"
