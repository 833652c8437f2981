"""Experiments: from a config to trained, scored students.

- :mod:`~xdx_lib.experiments.session`: data, teacher and students of one run config, each
  made once;
- :mod:`~xdx_lib.experiments.experiment_config`: an experiment's config (methods, seeds,
  grids) and its checks;
- :mod:`~xdx_lib.experiments.choices`: XDistillation's options chosen on validation;
- :mod:`~xdx_lib.experiments.tuning`: KD's options chosen on validation, the session every
  choice is made in, and the plateau;
- :mod:`~xdx_lib.experiments.runner`: every method and seed, scored, into results;
- :mod:`~xdx_lib.experiments.studies`: the seed-spread and intervention studies.
"""
