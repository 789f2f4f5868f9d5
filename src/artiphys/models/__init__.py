"""artiphys.models: loading models by name, weights, controls and built-in analytic cells.

>>> from artiphys.models import load_model
>>> spec = load_model("v1bank")             # analytic, no weights needed
>>> spec = load_model("alexnet", pretrained=False, seed=1, input_size=227)
"""

from artiphys.models.controls import reinitialize, untrained_twin, weight_shuffled_twin
from artiphys.models.registry import DEMO_MODEL, available_models, load_model, register_model
from artiphys.models.spec import ModelSpec, Preprocessing, as_spec

__all__ = [
    "DEMO_MODEL",
    "ModelSpec",
    "Preprocessing",
    "as_spec",
    "available_models",
    "load_model",
    "register_model",
    "reinitialize",
    "untrained_twin",
    "weight_shuffled_twin",
]
