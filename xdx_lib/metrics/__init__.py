"""Metrics: numbers of predictions and of explanation maps.

- :mod:`~xdx_lib.metrics.predictions`: accuracy, agreement with the teacher, flips;
- :mod:`~xdx_lib.metrics.similarity`: how alike two maps are (Pearson, Spearman, SSIM, ...);
- :mod:`~xdx_lib.metrics.faithfulness`: how well a map tells a model's evidence (deletion,
  insertion) or an object's place (pointing game, relevance mass);
- :mod:`~xdx_lib.metrics.names`: the names a result gives its metrics.
"""
