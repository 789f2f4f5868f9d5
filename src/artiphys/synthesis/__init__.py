"""artiphys.synthesis: maximal images, probes of them, and top natural-image patches.

* :mod:`.objectives` - composable per-image scores (``unit``, ``channel``, ``layer``,
  ``direction``, ``per_image``); each declares the layers it reads.
* :mod:`.param` - ``(params, image_fn)`` parameterisations: pixel, Fourier (1/f^decay),
  decorrelated colour, gray, single colour channel.
* :mod:`.transforms` - the loop's pluggable transforms, regularisers, preconditioner and
  projections (Yosinski et al. 2015 L2 decay, blur every k steps, clipping, norm).
* :mod:`.optimize` - the loop (:func:`optimize`), :class:`Stopper`, :class:`Tracker`.
* :mod:`.render` - :func:`render_units` (many units per batch) and :class:`Recipe`.
* :mod:`.probes` - zoom / rotation / colour / baseline probes (Bandi & Kinley).
* :mod:`.top_patches` - top natural-image patches with deconvnet or guided-backprop features
  (Pospisil et al. 2018).
* :mod:`.save` - writing all of it into a run directory.
"""

from artiphys.synthesis import objectives
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis.optimize import Stopper, SynthesisResult, Tracker, evaluate, optimize
from artiphys.synthesis.param import ImageParam, fourier, make_param, pixel
from artiphys.synthesis.probes import plot_probes, probe_responses, probe_table
from artiphys.synthesis.render import (Recipe, default_recipe, fourier_recipe, render_units,
                                       rf_size_px, yosinski_recipe)
from artiphys.synthesis.top_patches import (TopPatches, deconvnet, guided_backprop,
                                          plot_top_patches, top_patches)

__all__ = ["objectives", "forward_to_layers", "optimize", "evaluate", "Stopper", "Tracker",
           "SynthesisResult", "ImageParam", "pixel", "fourier", "make_param", "Recipe",
           "default_recipe", "fourier_recipe", "yosinski_recipe", "render_units", "rf_size_px",
           "probe_responses", "probe_table", "plot_probes", "top_patches", "TopPatches",
           "deconvnet", "guided_backprop", "plot_top_patches"]
