"""Report: what a reader sees of the numbers.

- :mod:`~xdx_lib.report.tables`: tables of results, and the formats of every number;
- :mod:`~xdx_lib.report.verdict_tables`: the claims' verdicts as tables and sentences;
- :mod:`~xdx_lib.report.readings`: sentences written from numbers;
- :mod:`~xdx_lib.report.plateau_readings`: the plateau check's sentences;
- :mod:`~xdx_lib.report.plots`: figures;
- :mod:`~xdx_lib.report.notebook`: the chapters' helpers (parameters, sizes, glue).
"""
