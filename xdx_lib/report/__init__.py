"""Report: what a reader sees of the numbers.

- :mod:`~xdx_lib.report.tables`: tables of results and verdicts;
- :mod:`~xdx_lib.report.readings`: sentences written from numbers;
- :mod:`~xdx_lib.report.plots`: figures;
- :mod:`~xdx_lib.report.notebook`: the chapters' helpers (parameters, sizes, glue).
"""
