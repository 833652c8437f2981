"""Numbers to verdicts, torch-free and tested on numbers alone.

- :mod:`~xdx_lib.analysis.stats`: paired differences, intervals, power, plateaus;
- :mod:`~xdx_lib.analysis.selection`: choosing on the validation split, never the test one;
- :mod:`~xdx_lib.analysis.claims`: the paper's claims, their parts and verdicts.
"""
