"""The core: what every other layer stands on, and which imports none of them.

- :mod:`~xdx_lib.core.registry`: every name a config may hold, by kind, and the factories;
- :mod:`~xdx_lib.core.config`: the run config, which names things only by kind;
- :mod:`~xdx_lib.core.cache`: atomic writes, hashes and the project's folders;
- :mod:`~xdx_lib.core.layout`: the run cache's layout (every folder, key recipe and format);
- :mod:`~xdx_lib.core.fingerprint`: the training code's fingerprint, checked against the formats;
- :mod:`~xdx_lib.core.run_archive`: a run cache packed for others, and fetched from them;
- :mod:`~xdx_lib.core.devices`: devices, ranks and seeds;
- ``_utils``: small tensor helpers shared by the layers above.
"""
