"""Numbers to verdicts, torch-free and tested on numbers alone.

- :mod:`~xdx_lib.analysis.stats`: paired differences, intervals, plateaus;
- :mod:`~xdx_lib.analysis.power`: p-values, Holm's control, power of the paired t test;
- :mod:`~xdx_lib.analysis.selection`: choosing on the validation split, never the test one;
- :mod:`~xdx_lib.analysis.claims`: the paper's claims, their parts and verdicts;
- :mod:`~xdx_lib.analysis.robustness`: how many tests the verdicts rest on, and each verdict
  with one seed left out.
"""
