"""Redirected ReLU: a gradient for units that are silent at the start of synthesis.

A channel whose rectifiers are all silent for the starting image gives no gradient, and
gradient ascent leaves its image gray. For the first ``rescue_steps`` steps,
:func:`redirected_relu` changes only the backward pass of the model's ``nn.ReLU``
modules (the forward values are unchanged): where a batch element's ordinary ReLU
gradient is all zero, the gradient also passes where the unit is silent but the gradient
would raise it (the idea of Lucid's redirected ReLU, our own implementation with a
forward hook and an autograd function); elements with a gradient keep the ordinary one. Hooks are removed and ``inplace`` flags restored on exit, also on error.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class _RedirectedReLU(torch.autograd.Function):
    """``max(x, 0)`` forward. Backward: the plain ReLU gradient for every batch element
    whose plain gradient is not all zero; for the others (all units the gradient reaches
    are silent) ``g`` passes where ``x > 0`` or where ``g < 0``.

    ``g`` is the gradient of the loss (the negated objective), so ``g < 0`` at a silent
    unit means raising it would raise the objective. Elements that already get a gradient
    keep their ordinary one, so live units are not disturbed.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        plain = grad * (x > 0).to(grad.dtype)
        if x.ndim == 0:
            return plain if bool(plain != 0) else grad * (grad < 0).to(grad.dtype)
        redirected = grad * ((x > 0) | (grad < 0)).to(grad.dtype)
        dead = (plain.reshape(plain.shape[0], -1) != 0).sum(1) == 0
        dead = dead.reshape((-1,) + (1,) * (x.ndim - 1))
        return torch.where(dead, redirected, plain)


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
