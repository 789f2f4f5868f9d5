"""artiphys: in-silico electrophysiology of deep networks.

Run the experiments a visual neurophysiologist runs on V1/V4 neurons -- shape tuning,
translation invariance, sparsity, maximal and diverse images -- on the units of a CNN.
"""

__version__ = "0.1.0"
