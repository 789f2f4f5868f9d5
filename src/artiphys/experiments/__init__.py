"""Experiments as values: one frozen config and one ``run(config, out, ...)`` each.

Every experiment writes into a run directory through the step store
(:mod:`artiphys.store.steps`), records the ``config.toml`` that reproduces it, resumes
by reusing exactly the steps whose keys match, and shows its progress.
"""
