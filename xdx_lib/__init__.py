"""xdx: XDistillation (explainable knowledge distillation) as a PyTorch library.

The public face, what a reader of the book uses:

- :class:`Session`: one config's data, teacher and students, each trained (or read from the
  run cache) once: ``Session(cfg).student(method="kd", seed=0)``;
- :func:`load_config` and :class:`RunConfig`: one run's config; :func:`load_experiment` and
  :func:`run_experiment`: an experiment (methods x seeds) from its YAML, trained and scored;
- :func:`create_model` and :func:`create_method`: a network or a training method by name;
- :func:`explain`: a model's explanation maps by any registered explainer (Captum);
- :func:`load_dataset`: a dataset by name.

The rest lives in folders by layer, each importing only the layers below it (a test holds
the order): ``core`` (registry, config, the run cache's layout, devices), ``analysis``
(statistics, choices on validation, claims; torch-free), ``data``, ``models``, ``explain``,
``metrics``, ``training`` (the loop and the trained models), ``distill`` (one file a
method with its loss), ``evaluation``, ``experiments`` (session, experiment config,
tuning, runner, studies) and ``report`` (tables, readings, plots, the chapters' helpers).
Importing the package registers every dataset, model, explainer and method, so that any
of them can be named in a config.
"""

__version__ = "0.2.0"

from xdx_lib import distill  # noqa: E402, F401  (registers every method)
from xdx_lib.core.config import RunConfig, load_config  # noqa: E402
from xdx_lib.data import sources  # noqa: E402, F401  (registers the datasets read from files)
from xdx_lib.data.datasets import load_dataset  # noqa: E402
from xdx_lib.distill.method import create_method  # noqa: E402
from xdx_lib.experiments.experiment_config import load_experiment  # noqa: E402
from xdx_lib.experiments.runner import run_experiment  # noqa: E402
from xdx_lib.experiments.session import Session  # noqa: E402
from xdx_lib.explain import explain  # noqa: E402
from xdx_lib.models.classifiers import create_model  # noqa: E402

__all__ = ["RunConfig", "Session", "create_method", "create_model", "explain", "load_config",
           "load_dataset", "load_experiment", "run_experiment"]  # fmt: skip
