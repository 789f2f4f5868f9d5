"""What the rest of artiphys knows about a model: the module and how to feed it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How images in [0, 1] (RGB, ``(n, 3, H, W)``) become model input.

    Attributes
    ----------
    input_size_px : int
        Side of the square input the model is run at (227 for the AlexNet runs of
        Pospisil et al. 2018, 224 for most torchvision models).
    mean, std : tuple of float
        Per-channel normalisation applied after resizing, in ``channel_order``.
    channel_order : str
        ``"RGB"`` or ``"BGR"``; images are always held as RGB and permuted on input.
    """

    input_size_px: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Map RGB images in [0, 1] of shape ``(n, 3, H, W)`` to model input (no resizing)."""
        if self.channel_order == "BGR":
            images = images.flip(1)
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return images.sub(mean).div_(std)  # one temporary, not two


@dataclass
class ModelSpec:
    """A loaded model in eval mode with its preprocessing and provenance.

    Attributes
    ----------
    name : str
        Registry name (``"alexnet"``, ``"timm:nasnetalarge"``, ``"v1bank"``, ...) or
        ``"custom"`` for a user module.
    module : nn.Module
        The network, in eval mode, with ``requires_grad`` left as loaded.
    preprocessing : Preprocessing
    condition : str
        ``"trained"``, ``"untrained"``, ``"weight-shuffled"`` or ``"analytic"``.
    weights_path : str or None
        File the weights came from (None for untrained/analytic models).
    weights_sha256 : str or None
        Full sha256 of that file.
    seed : int or None
        Seed of random initialisation / shuffling where one was used.
    aliases : dict
        Paper-style layer aliases (``"conv1"``) mapped to module paths (``"features.0"``).
    """

    name: str
    module: nn.Module
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    condition: str = "trained"
    weights_path: str | None = None
    weights_sha256: str | None = None
    seed: int | None = None
    aliases: dict[str, str] = field(default_factory=dict)

    def with_input_size(self, input_size_px: int) -> ModelSpec:
        """Same model, run at another input size."""
        return replace(self, preprocessing=replace(self.preprocessing, input_size_px=int(input_size_px)))

    def provenance(self) -> dict:
        """JSON-able description for run manifests."""
        p = self.preprocessing
        return {
            "model": self.name,
            "condition": self.condition,
            "weights_path": self.weights_path,
            "weights_sha256": self.weights_sha256,
            "seed": self.seed,
            "input_size_px": p.input_size_px,
            "mean": list(p.mean),
            "std": list(p.std),
            "channel_order": p.channel_order,
        }


def model_info(spec: ModelSpec) -> dict:
    """Provenance, number of parameters and aliases of a loaded model (``model-info``)."""
    info = spec.provenance()
    info["n_parameters"] = sum(p.numel() for p in spec.module.parameters())
    info["aliases"] = spec.aliases
    return info


def as_spec(model: ModelSpec | nn.Module, preprocessing: Preprocessing | None = None) -> ModelSpec:
    """Wrap a plain ``nn.Module`` (user model) as a :class:`ModelSpec`; pass specs through."""
    if isinstance(model, ModelSpec):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a ModelSpec or torch.nn.Module, got {type(model).__name__}")
    model.eval()
    return ModelSpec(name="custom", module=model, preprocessing=preprocessing or Preprocessing(),
                     condition="custom")


def default_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the one asked for, else CUDA when present, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without parameters)."""
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
