"""TI steps of the battery: one multi-layer sweep per condition, shape-size group and axis
(:func:`artiphys.tuning.ti_layers.sweep_layers`: every layer of the group from the same
stride-phase passes, brute force only where equivariance fails), then TI per layer in the
stimulus-inside-the-RF window, and the shuffle control (no forward pass)."""

from __future__ import annotations


def ti(battery, condition: str, cspec) -> None:
    """Sweep and TI of every layer along every configured axis."""
    from artiphys.experiments.base import model_inputs
    from artiphys.stimuli.shapes import shapes
    from artiphys.tuning.ti import position_sweep, ti_from_sweep
    from artiphys.tuning.ti_layers import sweep_center_px, sweep_layers

    cfg = battery.cfg
    positions = position_sweep(cfg.ti_step_px, cfg.ti_extent_px)
    canvas = cspec.preprocessing.input_size_px
    batch_size, device = min(battery.s.batch_size, 32), battery.s.device

    def one(item):
        px, axis = item
        refs = battery.groups[px]
        cy, cx = sweep_center_px(cspec, [ref.name for ref in refs])
        images = shapes(size_px=px, canvas_px=canvas, x_px=cx, y_px=cy)
        tag = "" if axis == "x" else f"_{axis}"
        battery.s.progress.step(f"{condition}: TI sweep along {axis} of {len(refs)} "
                                f"layer(s), {px:g} px shapes")
        steps = [battery.step("ti_sweep", condition, ref.label, spec=cspec, tag=tag,
                              inputs={**model_inputs(cspec), "layer": ref.name,
                                      "stimuli": images.content_hash,
                                      "center_px": [cy, cx]},
                              settings={"positions_px": positions.tolist(), "axis": axis})
                 for ref in refs]
        by_label = {ref.label: ref.name for ref in refs}

        def compute(todo):
            got = sweep_layers(cspec, images, [by_label[t.meta["layer"]] for t in todo],
                               positions, axis=axis, center_px=(cy, cx),
                               batch_size=batch_size, device=device)
            return [got[t.meta["layer"]] for t in todo]

        sweeps = battery.s.store.get_or_compute_many(steps, compute,
                                                     executor=battery.s.executor)
        for ref, step, sweep in zip(refs, steps, sweeps):
            battery.results[condition, ref.label, f"ti_sweep{tag}"] = (step.digest, sweep)
            _ti_of(battery, condition, cspec, ref, step.digest, sweep, axis, tag,
                   ti_from_sweep)

    battery.s.executor.each(one, [(px, axis) for px in battery.groups for axis in cfg.ti_axes])


def _ti_of(battery, condition, cspec, ref, digest, sweep, axis, tag, ti_from_sweep) -> None:
    seed = battery.cfg.control_seed
    battery.one(condition, ref.label, "ti", cspec, {"sweep": digest},
                {"window": "rf", "axis": axis}, lambda: ti_from_sweep(sweep), tag=tag)
    if battery.shuffle(condition):
        battery.one("shuffle", ref.label, "ti_shuffle", cspec, {"sweep": digest},
                    {"window": "rf", "axis": axis, "seed": seed},
                    lambda: ti_from_sweep(sweep, shuffle_seed=seed), tag=tag)


__all__ = ["ti"]
