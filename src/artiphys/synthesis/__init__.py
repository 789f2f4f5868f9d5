"""artiphys.synthesis: maximal images, probes of them, and top natural-image patches.

Objectives (:mod:`.objectives`) score each image of a batch; parameterisations
(:mod:`.param`) make the images; :mod:`.transforms` holds the loop's pluggable
transforms, regularisers, preconditioner and projections; :func:`.optimize.optimize` runs
the loop. See ``docs/design.md``.
"""

from artiphys.synthesis import objectives
from artiphys.synthesis.hooks import forward_to_layers
from artiphys.synthesis.optimize import Stopper, SynthesisResult, Tracker, evaluate, optimize
from artiphys.synthesis.param import ImageParam, fourier, make_param, pixel

__all__ = ["objectives", "forward_to_layers", "optimize", "evaluate", "Stopper", "Tracker",
           "SynthesisResult", "ImageParam", "pixel", "fourier", "make_param"]
