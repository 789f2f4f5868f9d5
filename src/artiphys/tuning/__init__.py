"""artiphys.tuning: analyses of recorded responses (Pospisil, Pasupathy & Bair 2018).

- :mod:`~artiphys.tuning.apc` - angular position x curvature model: grid, predictions,
  vectorised and cross-validated fits.
- :mod:`~artiphys.tuning.apc_screen` - the screened APC fit (``fit_apc(method=...)``): the
  full fit's best model from a provable low-rank bound and exact scores of the survivors.
- :mod:`~artiphys.tuning.confounds` - shape area / perimeter / size per stimulus, per-unit
  size r and the APC r with area partialled out.
- :mod:`~artiphys.tuning.ti` - translation invariance, RF profile, position correlation;
  position-sweep responses by stride-phase equivariance or brute force (the metric in
  :mod:`~artiphys.tuning.ti_metric`, the stimulus-in-RF window in
  :mod:`~artiphys.tuning.ti_window`, several layers from shared passes in
  :mod:`~artiphys.tuning.ti_layers`, shape sizes per layer in
  :mod:`~artiphys.tuning.shape_size`).
- :mod:`~artiphys.tuning.sparsity` - kurtosis, Treves-Rolls / lifetime sparseness,
  response histograms, natural/shape max ratio, top and bottom stimuli.
- :mod:`~artiphys.tuning.controls` - shuffle nulls, ``condition`` bookkeeping, medians and
  trained-vs-control tests over control seeds.
- :mod:`~artiphys.tuning.neural` - comparison with recorded neurons.
- :mod:`~artiphys.tuning.orientation` - grating tuning.

The whole battery with controls is the ``characterize`` experiment
(:mod:`artiphys.experiments.characterize`).
"""

from artiphys.tuning.apc import APCGrid, apc_predictions, fit_apc, fit_apc_cv
from artiphys.tuning.controls import combine_conditions, shuffle_null, shuffle_responses
from artiphys.tuning.sparsity import apply_kurtosis_filter, sparsity
from artiphys.tuning.ti import sweep_responses, ti_metric, translation_invariance

__all__ = ["APCGrid", "apc_predictions", "apply_kurtosis_filter", "combine_conditions",
           "fit_apc", "fit_apc_cv", "shuffle_null", "shuffle_responses", "sparsity",
           "sweep_responses", "ti_metric", "translation_invariance"]
