"""The optimisation loop: gradient ascent on a parameterised batch of images.

One call optimises a whole batch, each element with its own objective (see
:func:`artiphys.synthesis.objectives.per_image`). The loop's pluggable callables
(transform, regulariser, preconditioner, projection) follow sinzlab's ``mei`` and default
to identity; a :class:`Stopper` decides when to stop; a :class:`Tracker` records the
objective of every image at every step. Nothing is printed; progress goes through one
optional ``tqdm`` bar.

Each step (Yosinski et al. 2015, eq. 2, with Adam or SGD for the plain gradient step):

    x = image_fn(params);  s_i = objective_i(model(normalise(transform(x))))_i - r(x)_i
    params <- projection(params + step(preconditioner(d sum_i s_i / d params)))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from artiphys.errors import ArtiphysError, ResponseError
from artiphys.models.spec import ModelSpec, as_spec, module_device
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis.objectives import Objective, parts
from artiphys.synthesis.param import ImageParam
from artiphys.synthesis.rescue import redirected_relu
from artiphys.synthesis.transforms import identity


@dataclass
class Tracker:
    """Records the objective of every image at every step (and the wall time)."""

    scores: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    _t0: float = field(default=0.0, repr=False)

    def start(self) -> None:
        self.scores, self.seconds, self._t0 = [], [], time.perf_counter()

    def __call__(self, step: int, scores: torch.Tensor) -> None:
        self.scores.append(scores.detach().float().cpu().numpy().copy())
        self.seconds.append(time.perf_counter() - self._t0)

    @property
    def trace(self) -> np.ndarray:
        """Objective per step and image, ``(steps, n)``."""
        if not self.scores:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(self.scores).astype(np.float32)


@dataclass
class Stopper:
    """Stop after ``patience`` steps without improvement of the smoothed mean objective.

    The batch-mean objective is smoothed with an exponential moving average
    ``m <- smoothing * m + (1 - smoothing) * s``; an improvement is a rise of the smoothed
    value by more than ``min_delta`` over its best. ``patience=None`` never stops early.
    """

    patience: int | None = None
    smoothing: float = 0.9
    min_delta: float = 0.0
    _ema: float | None = field(default=None, repr=False)
    _best: float = field(default=-np.inf, repr=False)
    _since: int = field(default=0, repr=False)

    def reset(self) -> None:
        self._ema, self._best, self._since = None, -np.inf, 0

    def __call__(self, step: int, scores: torch.Tensor) -> bool:
        s = float(scores.detach().mean())
        self._ema = s if self._ema is None else self.smoothing * self._ema + (1 - self.smoothing) * s
        if self._ema > self._best + self.min_delta:
            self._best, self._since = self._ema, 0
        else:
            self._since += 1
        return self.patience is not None and self._since >= self.patience


@dataclass
class SynthesisResult:
    """What one optimisation produced.

    Attributes
    ----------
    images : Tensor ``(n, 3, H, W)``
        Final images, RGB in [0, 1], on CPU.
    final : ndarray ``(n,)``
        Each image's objective on the final image, without transforms.
    trace : ndarray ``(steps_run, n)``
        Objective per step (on the transformed image the step used).
    objectives : list of str
        The per-image objective names.
    settings : dict
        JSON-able settings of the run (parameterisation, loop, seed, ...).
    seconds : float
        Wall time of the loop.
    """

    images: torch.Tensor
    final: np.ndarray
    trace: np.ndarray
    objectives: list
    settings: dict
    seconds: float

    @property
    def steps_run(self) -> int:
        return int(self.trace.shape[0])


def _optimizer(name: str, params, lr: float):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ArtiphysError(f"unknown optimizer {name!r}; use 'adam' or 'sgd'")




def evaluate(model: ModelSpec | torch.nn.Module, objective: Objective,
             images: torch.Tensor) -> torch.Tensor:
    """The objective of each image (RGB in [0, 1]) without transforms, as a CPU tensor."""
    spec = as_spec(model)
    dev = module_device(spec.module)
    with torch.no_grad():
        acts = forward_to_layers(spec, spec.preprocessing.normalise(images.to(dev)),
                                 objective.layers)
        return objective(acts).detach().cpu()


@contextmanager
def _memory_format(module: torch.nn.Module, channels_last: bool):
    """Hold ``module``'s 4-d parameters in channels-last format inside the block."""
    convert = channels_last and not any(
        p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last)
        and not p.is_contiguous() for p in module.parameters())
    if convert:
        module.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if convert:
            module.to(memory_format=torch.contiguous_format)


def _one_step(spec, objective, param, step, x_of, regulariser, preconditioner, projection,
              opt, rescue: bool) -> torch.Tensor:
    """One gradient step on ``param`` (ReLUs redirected when ``rescue``); its scores."""
    images = param.image_fn()
    with redirected_relu(spec.module, active=rescue):
        acts = forward_to_layers(spec, x_of(images, step), objective.layers)
        scores = objective(acts)
        if scores.ndim != 1 or scores.shape[0] != param.n:
            raise ArtiphysError(f"objective gave scores of shape {tuple(scores.shape)} "
                                f"for {param.n} images; expected ({param.n},)")
        if not scores.requires_grad:
            raise ResponseError(f"the objective on layer(s) {', '.join(map(str, objective.layers))} "
                                "does not depend on the image (no gradient reaches the "
                                "input: a constant layer?); choose a layer that the image "
                                "drives")
        total = scores if regulariser is None else scores - regulariser(images)
        grads = torch.autograd.grad(-total.sum(), param.params)
    for p, g in zip(param.params, grads):
        p.grad = preconditioner(g, step)
    opt.step()
    with torch.no_grad():
        for p in param.params:
            projection(p, step)
    return scores


def _settings(spec, objective, param, stopper, **loop) -> dict:
    return {"param": dict(param.settings), **loop, "size_px": param.size_px,
            "objective": objective.name, "model": spec.provenance(),
            "stopper": {"patience": stopper.patience, "smoothing": stopper.smoothing,
                        "min_delta": stopper.min_delta}}


def _loop(spec, objective, param, steps, lr, optimizer, transform, regulariser,
          preconditioner, projection, stopper, tracker, seed, progress, channels_last,
          rescue_steps) -> None:
    """The optimisation loop of :func:`optimize` (its arguments), in a forked RNG."""
    normalise = spec.preprocessing.normalise

    def x_of(images, step):
        x = normalise(transform(images, step))
        return x.contiguous(memory_format=torch.channels_last) \
            if channels_last and x.ndim == 4 else x

    dev = module_device(spec.module)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), _memory_format(spec.module, channels_last):
        torch.manual_seed(int(seed))
        opt = _optimizer(optimizer, param.params, lr)
        bar = tqdm(total=steps, disable=not progress, leave=False, desc="synthesis")
        try:
            for step in range(steps):
                scores = _one_step(spec, objective, param, step, x_of, regulariser,
                                   preconditioner or identity, projection or identity, opt,
                                   step < rescue_steps)
                tracker(step, scores)
                bar.update(1)
                if stopper(step, scores):
                    break
        finally:
            bar.close()
            for p in param.params:
                p.grad = None


def optimize(model: ModelSpec | torch.nn.Module, objective: Objective, param: ImageParam, *,
             steps: int = 256, lr: float = 0.05, optimizer: str = "adam",
             transform: Callable | None = None, regulariser: Callable | None = None,
             preconditioner: Callable | None = None, projection: Callable | None = None,
             stopper: Stopper | None = None, tracker: Tracker | None = None, seed: int = 0,
             progress: bool = False, channels_last: bool = False,
             rescue_steps: int = 0) -> SynthesisResult:
    """Maximise ``objective`` over the images of ``param``.

    Parameters
    ----------
    model : ModelSpec or nn.Module
        In eval mode; its weights are not changed and get no ``.grad``. Runs on the device
        its parameters are on (``param`` must have been built there).
    objective : Objective
        Per-image scores ``(n,)`` to maximise (use ``-objective`` for the most suppressive
        image); only its layers are hooked and the forward pass stops after them.
    param : ImageParam
        ``(params, image_fn)``; its ``params`` are optimised in place.
    steps, lr, optimizer : int, float, {"adam", "sgd"}
    transform, regulariser, preconditioner, projection : callables, optional
        See :mod:`artiphys.synthesis.transforms`; default identity / none.
    stopper, tracker : Stopper, Tracker, optional
        Early stopping on a smoothed objective (default: run all ``steps``); a recorder of
        every step's scores (a fresh one if not given).
    seed : int
        Seeds the transforms' randomness inside ``torch.random.fork_rng`` (the caller's
        random state is left as it was). CPU runs are bit-for-bit reproducible.
    progress : bool
        Show one tqdm progress bar.
    channels_last : bool
        Run the convolutions in channels-last memory format for the loop (weights
        converted back afterwards; about 1.6x faster on CPU for small-image batches).
    rescue_steps : int
        For the first ``rescue_steps`` steps the model's ``nn.ReLU`` modules back-propagate
        redirected (:func:`artiphys.synthesis.rescue.redirected_relu`), so units silent
        for the starting image still get a gradient; 0 (the default here) switches it off.
        :class:`artiphys.synthesis.render.Recipe` (maximal images) uses 16.
    """
    spec = as_spec(model)
    if steps < 1:
        raise ArtiphysError(f"steps must be >= 1, got {steps}")
    if rescue_steps < 0:
        raise ArtiphysError(f"rescue_steps must be >= 0, got {rescue_steps}")
    transform = transform or identity
    tracker = tracker if tracker is not None else Tracker()
    stopper = stopper if stopper is not None else Stopper()
    stopper.reset()
    tracker.start()

    t0 = time.perf_counter()
    _loop(spec, objective, param, steps, lr, optimizer, transform, regulariser,
          preconditioner, projection, stopper, tracker, seed, progress, channels_last,
          rescue_steps)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        images = param.image_fn().detach()
    final = evaluate(spec, objective, images).numpy()
    settings = _settings(spec, objective, param, stopper, steps=int(steps), lr=float(lr),
                         optimizer=optimizer, seed=int(seed),
                         channels_last=bool(channels_last), rescue_steps=int(rescue_steps))
    return SynthesisResult(images=images.cpu(), final=final, trace=tracker.trace,
                           objectives=[o.name for o in parts(objective)], settings=settings,
                           seconds=seconds)
