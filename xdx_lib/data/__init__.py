"""Data: splits held as tensors, the datasets by name, and training batches.

- :mod:`~xdx_lib.data.datasets`: :class:`~xdx_lib.data.datasets.Split`,
  :class:`~xdx_lib.data.datasets.Dataset` and the dataset registry;
- :mod:`~xdx_lib.data.sources`: the datasets read from files (IDX, image folders);
- :mod:`~xdx_lib.data.batches`: shuffling, augmentation and the batch dict.
"""
