"""Redirected ReLU: a gradient for units that are silent at the start of synthesis.

A channel whose rectifiers are all silent for the starting image gives no gradient, and
gradient ascent leaves its image gray. For the first ``rescue_steps`` steps,
:func:`redirected_relu` changes only the backward pass of the model's ``nn.ReLU``
modules (the forward values are unchanged): the gradient passes where the unit is active,
as usual, and also where it is silent but the gradient would raise it (the idea of
Lucid's redirected ReLU, our own implementation with a forward hook and an autograd
function). Hooks are removed and ``inplace`` flags restored on exit, also on error.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class _RedirectedReLU(torch.autograd.Function):
    """``max(x, 0)`` forward; backward passes ``g`` where ``x > 0`` or where ``g < 0``.

    ``g`` is the gradient of the loss (the negated objective), so ``g < 0`` at a silent
    unit means raising it would raise the objective.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x > 0) | (grad < 0)).to(grad.dtype)


def _hook(_module, inputs, _output):
    return _RedirectedReLU.apply(inputs[0])


@contextmanager
def redirected_relu(module: nn.Module, active: bool = True):
    """Inside the block, every ``nn.ReLU`` of ``module`` back-propagates redirected.

    Yields the number of ReLU modules redirected (0 when ``active`` is false). Functional
    relus (``F.relu``) are not seen.
    """
    relus = [m for m in module.modules() if isinstance(m, nn.ReLU)] if active else []
    handles, inplace = [], [m.inplace for m in relus]
    try:
        for m in relus:
            m.inplace = False
            handles.append(m.register_forward_hook(_hook))
        yield len(relus)
    finally:
        for h in handles:
            h.remove()
        for m, flag in zip(relus, inplace):
            m.inplace = flag


__all__ = ["redirected_relu"]
