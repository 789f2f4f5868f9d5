"""The ``apc`` and ``ti`` experiments: analyses of a ``record`` run's responses.

Their results are steps keyed by the digests of the recorded chunks they read (so a
re-recorded layer is re-analysed) and their own settings; ``--out`` may be the recorded
run itself (one study) or another folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from artiphys.config import Config, option
from artiphys.experiments.base import ExecutionConfig, Session, run_experiment
from artiphys.experiments.battery_summary import median
from artiphys.store.rundir import RunDir, file_label


@dataclass(frozen=True)
class ApcConfig(Config):
    """Fit the APC model to a recorded run's shape responses."""

    kind = "apc"
    source_run: str = option("", cli="--run", help="A `record` run of the shapes.")
    layers: tuple[str, ...] = option((), help="Layers of the run [default: all].")
    features_csv: str | None = option(None, cli="--features", help="APC feature table "
                                      "(stimulus_index in the standard 370 numbering, "
                                      "angular_position_rad, curvature) [default: computed "
                                      "from the shape coords].")
    cv_folds: int = option(0, help="Also a k-fold cross-validated fit (0 = off).")
    n_shuffle: int = option(0, cli="--shuffle", help="Shuffle-control repeats (null "
                            "distribution of r).")
    kurtosis_threshold: float | None = option(None, cli="--kurtosis-filter",
                                              help="Exclude units with kurtosis >= this.")
    seed: int = option(0, help="Seed of the folds and shuffles.")
    execution: ExecutionConfig = option(default_factory=ExecutionConfig)

    def validate(self):
        if not self.source_run:
            self.fail("source_run", "give the recorded run directory")
        if self.cv_folds == 1 or self.cv_folds < 0:
            self.fail("cv_folds", f"must be 0 (off) or at least 2, not {self.cv_folds}")
        if self.n_shuffle < 0:
            self.fail("n_shuffle", f"must be 0 (off) or more, not {self.n_shuffle}")
        if self.kurtosis_threshold is not None and not self.kurtosis_threshold > 0:
            self.fail("kurtosis_threshold", "must be positive (the paper: 42)")


@dataclass(frozen=True)
class TiConfig(Config):
    """Translation invariance from a recorded run of a ``shapes_sweep`` set."""

    kind = "ti"
    source_run: str = option("", cli="--run", help="A `record` run of a shapes_sweep set.")
    layers: tuple[str, ...] = option((), help="Layers of the run [default: all].")
    axis: Literal["x", "y"] = option("x", help="Sweep direction.")
    stimulus_width_px: float | None = option(None, cli="--stimulus-width",
                                             help="Stimulus width in px [default: the "
                                                  "size_px coord].")
    execution: ExecutionConfig = option(default_factory=ExecutionConfig)

    def validate(self):
        if not self.source_run:
            self.fail("source_run", "give the recorded run directory")
        if self.stimulus_width_px is not None and not self.stimulus_width_px > 0:
            self.fail("stimulus_width_px", "must be a positive width in px")


def _layers(source: RunDir, layers) -> list[str]:
    from artiphys.experiments.record import recorded_layers

    return list(layers) or recorded_layers(source)


def _inputs(source: RunDir, label: str) -> dict:
    from artiphys.experiments.record import response_digests

    return {"responses": response_digests(source, label)}


def run_apc(config: ApcConfig, out: str | os.PathLike, **options) -> RunDir:
    """Fit the APC model to every layer of ``config.source_run``; results into ``out``."""
    return run_experiment(config, out, lambda s: _apc(s, config), **options)


def _apc(session: Session, config: ApcConfig) -> dict:
    from artiphys.experiments.record import load_responses

    source = RunDir.open(config.source_run)
    summary = {}
    preds_cache: dict = {}
    layers = _layers(source, config.layers)
    session.progress.plan(len(layers))
    for label in layers:
        session.progress.step(f"APC fit of {label}")
        da = load_responses(source, label)
        steps = _apc_steps(session, config, source, label)
        res = session.store.get_or_compute(
            steps["apc"], lambda: _fit(da, config, preds_cache, session.device))
        row = {"n_units": int(da.sizes["unit"]), "apc_r_median": median(res.r),
               "apc_r_frac_gt_0.5": float((np.asarray(res.r) > 0.5).mean())}
        if config.cv_folds:
            cv = session.store.get_or_compute(
                steps["apc_cv"], lambda: _fit(da, config, preds_cache, session.device, cv=True))
            row["apc_cv_r_median"] = median(cv.r)
        if config.n_shuffle:
            null = session.store.get_or_compute(
                steps["apc_shuffle"],
                lambda: _fit(da, config, preds_cache, session.device, shuffle=True))
            row["shuffle_r_median"] = median(null.r)
        summary[label] = row
    return summary


def _apc_steps(session, config: ApcConfig, source: RunDir, label: str) -> dict:
    features = (_file_digest(config.features_csv) if config.features_csv
                else "computed from shape coords")
    inputs = {**_inputs(source, label), "features": features}
    base = {"kurtosis_threshold": config.kurtosis_threshold}
    path = f"apc/{file_label(label)}"
    return {"apc": session.step("apc", 1, inputs=inputs, settings=base, path=f"{path}/apc",
                                layer=label, result="apc"),
            "apc_cv": session.step("apc_cv", 1, inputs=inputs,
                                   settings={"folds": config.cv_folds, "seed": config.seed},
                                   path=f"{path}/apc_cv", layer=label, result="apc_cv"),
            "apc_shuffle": session.step("apc_shuffle_null", 1, inputs=inputs,
                                        settings={"repeats": config.n_shuffle,
                                                  "seed": config.seed},
                                        path=f"{path}/apc_shuffle", layer=label,
                                        result="apc_shuffle")}


def _file_digest(path: str) -> str:
    from artiphys.errors import StimulusError
    from artiphys.store.atomic import sha256_file

    try:
        return sha256_file(path)
    except OSError as exc:
        raise StimulusError(f"cannot read the feature table {path}: {exc.strerror}; check "
                            "the path") from None


def _fit(da, config: ApcConfig, cache: dict, device, *, cv=False, shuffle=False):
    from artiphys.tuning.apc import fit_apc, fit_apc_cv
    from artiphys.tuning.controls import shuffle_null
    from artiphys.tuning.sparsity import apply_kurtosis_filter, sparsity

    preds = _predictions(da, config, cache, device)
    if cv:
        return fit_apc_cv(da, predictions=preds, n_folds=config.cv_folds, seed=config.seed,
                          device=device)
    if shuffle:
        return shuffle_null(da, fit_apc, n_repeats=config.n_shuffle, seed=config.seed,
                            predictions=preds, device=device)
    res = fit_apc(da, predictions=preds, device=device)
    if config.kurtosis_threshold is not None:
        res = apply_kurtosis_filter(res, sparsity(da).kurtosis.values,
                                    config.kurtosis_threshold)
    return res


def _predictions(da, config: ApcConfig, cache: dict, device):
    """APC predictions for the run's stimuli (features from the table or the shapes)."""
    key = tuple(np.asarray(da["stimulus"].values).tolist())
    if key not in cache:
        import pandas as pd

        from artiphys.stimuli.apc_features import apc_features, load_feature_table
        from artiphys.tuning.apc import align_features, apc_predictions

        if config.features_csv:
            feats = align_features(load_feature_table(config.features_csv), da)
        else:
            table = pd.DataFrame({c: np.asarray(da[c].values) for c in ("shape_id", "rotation")
                                  if c in da.coords})
            feats = apc_features(table)
        cache[key] = apc_predictions(feats, device=device)
    return cache[key]


def run_ti(config: TiConfig, out: str | os.PathLike, **options) -> RunDir:
    """TI of every layer of ``config.source_run`` (a shapes_sweep recording)."""
    return run_experiment(config, out, lambda s: _ti(s, config), **options)


def _ti(session: Session, config: TiConfig) -> dict:
    from artiphys.experiments.record import load_responses
    from artiphys.tuning.ti import ti_from_recorded

    source = RunDir.open(config.source_run)
    summary = {}
    layers = _layers(source, config.layers)
    session.progress.plan(len(layers))
    for label in layers:
        session.progress.step(f"TI of {label} along {config.axis}")
        step = session.step("ti_recorded", 1, inputs=_inputs(source, label),
                            settings={"axis": config.axis,
                                      "stimulus_width_px": config.stimulus_width_px},
                            path=f"ti/{file_label(label)}/ti_{config.axis}", layer=label,
                            result=f"ti_{config.axis}")
        res = session.store.get_or_compute(step, lambda: ti_from_recorded(
            load_responses(source, label), axis=config.axis,
            stimulus_width_px=config.stimulus_width_px))
        values = np.asarray(res.ti.values, float)
        summary[label] = {"n_units": int(res.sizes["unit"]), "ti_median": median(values),
                          "n_undefined": int((~np.isfinite(values)).sum())}
    return summary


__all__ = ["ApcConfig", "TiConfig", "run_apc", "run_ti"]
