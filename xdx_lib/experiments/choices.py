"""XDistillation's options chosen on the validation split, then written into the experiment
the claims read.

The library's defaults (``staged``, ``cae_grad: exp``, ``channel`` fusion, a 6-epoch
``grid: skips`` CAE) were set before the project had a validation split.
:func:`choose_xdistill` checks them, in three steps, on tune seeds no claim reads:

1. the CAE: each decoder with each variant (:func:`cae_candidates`), pre-trained alone;
   the one of highest validation r with the teacher's maps replaces the config's only when
   the seeds show it higher (:func:`choose_cae`);
2. the CAE's pre-training epochs: the cheapest of :data:`PRETRAINING_EPOCHS` and the
   config's whose stand-alone CAE reaches, on validation, within :data:`R_WITHIN` of the
   longest and :data:`R_ABOVE_REFERENCE` above the image-blind mean-map reference;
3. the schedule, routing and fusion: every variant of :data:`VARIANTS` (and KD) trained
   with those epochs, scored on validation (:func:`variant_table`),
   checked (the CAE map within :data:`R_WITHIN` of the stand-alone CAE's, and
   :data:`R_ABOVE_REFERENCE` above the reference; accuracy shown no worse than KD's by more
   than :data:`~xdx_lib.analysis.claims.FRACTION_MARGIN`, which needs two seeds or more), and
   picked by :func:`~xdx_lib.analysis.selection.xdistill_variant`: the cheapest by training
   operations (:func:`~xdx_lib.distill.cost.training_flops`, the same on every machine), a
   costlier one only where the default is shown to fail a check, then the fusion, kept at
   the default unless another is shown more accurate on validation.

A step whose checks the seeds cannot decide picks nothing and the default stays, said so
(:attr:`XDistillChoice.decided`). :func:`apply_choice` writes what was picked into an
experiment; :func:`~xdx_lib.experiments.tuning.tuned_session` does so for every experiment
with ``xdistill_seeds``, so the claims run what was chosen. Layer: above the studies and the
session; below the runner's callers (the chapters).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from xdx_lib.analysis import selection, stats
from xdx_lib.analysis.claims import FRACTION_MARGIN
from xdx_lib.core import layout
from xdx_lib.core.cache import atomic_write_json, read_result
from xdx_lib.core.devices import on_rank_zero
from xdx_lib.distill.cae_pretraining import pretrain_cae
from xdx_lib.distill.cost import training_flops
from xdx_lib.evaluation.scoring import CLAIM_SIMILARITIES, evaluate_model, scored_split
from xdx_lib.experiments.experiment_config import ExperimentConfig
from xdx_lib.experiments.session import Session
from xdx_lib.metrics import similarity
from xdx_lib.models.cae import CAE_OUTPUTS, CAE_VARIANTS, predict_maps
from xdx_lib.models.classifiers import count_parameters
from xdx_lib.training.trained_model import TrainedModel, model_maps

#: The library's defaults, the first variant; every other variant changes them.
DEFAULTS = {"schedule": "staged", "cae_grad": "exp", "fusion": "channel"}
#: The candidates by name, each as config changes of the defaults.
VARIANTS = {
    "default: staged, exp, channel": {},
    "joint, cae_grad: exp": {"schedule": "joint"},
    "joint, cae_grad: all": {"schedule": "joint", "cae_grad": "all"},
    "fusion: gate": {"fusion": "gate"},
    "fusion: feature": {"fusion": "feature"},
    "old reading (joint, all, full CAE, MSE)": {"schedule": "joint", "cae_grad": "all",
                                                "cae_output": "full", "cae_width": 8,
                                                "cae_variant": "both", "exp_loss": "mse"},
}  # fmt: skip
#: The name of the defaults' variant.
DEFAULT_VARIANT = next(iter(VARIANTS))
#: The baseline every variant's accuracy is checked against.
BASELINE = "KD"
#: The students the choice trains on each seed, the baseline first and then the variants.
CANDIDATES = {BASELINE: {"method": "kd"}, **VARIANTS}
#: The shorter CAE pre-training the config's epochs are checked against.
PRETRAINING_EPOCHS = (2,)
#: How far below the stand-alone (or the longest pre-trained) CAE's r a map may stay.
R_WITHIN = 0.03
#: How far above the image-blind mean-map reference a map must reach.
R_ABOVE_REFERENCE = 0.15
#: The column of training operations, the cost the schedules are ranked by.
COST = "training GFLOPs / image"
#: Channels of each decoder's first block among the CAE candidates (the CAE chapter's); the
#: config's own decoder keeps the config's width.
CAE_WIDTHS = {"full": 8, "grid": 16}
#: The stand-alone CAE's validation score the CAE is chosen by.
CAE_METRIC = "r"
#: The checks, in the table's order.
CHECKS = (f"CAE r within {R_WITHIN} of the stand-alone CAE's",
          f"CAE r at least {R_ABOVE_REFERENCE} above the mean-map reference",
          "accuracy no worse than KD's")  # fmt: skip


def variant_table(session: Session, variants: dict[str, dict], seeds,
                  split: str = "val") -> pd.DataFrame:  # fmt: skip
    """Train (or load) one student per variant and seed, and score each against the teacher.

    ``variants`` maps a row name to config changes of the session's config; every variant runs on
    every seed, so differences can be paired. Each row: ``variant``, ``seed``, ``accuracy``,
    ``agreement``, the whole student's ``gradcam/pearson``, ``cae/pearson`` (XDistillation's own
    map) and ``epoch_seconds``; ``history`` holds the run's per-epoch records for curves. The scores
    are on ``split`` (:func:`~xdx_lib.evaluation.scoring.evaluate_model`): by default the validation
    split, on which the XDistillation chapter chooses its defaults
    (:func:`xdx_lib.analysis.selection.cheapest_passing`); ``split="test"`` reports. The table
    records its split (:func:`xdx_lib.analysis.selection.scored_on`), so no chooser takes a
    test table however its columns are renamed.

    Raises:
        ValueError: ``split`` has no images (no validation split: ``val_size`` 0), said
            before any student trains.

    Under ``torchrun`` every rank trains (or loads) the students, rank 0 alone scores them,
    and every rank returns the same table (:func:`~xdx_lib.core.devices.on_rank_zero`).
    """
    scored_split(session.data, split)  # refuse before training, not after
    runs = {(name, seed): session.student(**{"seed": seed, **changes})
            for name, changes in variants.items() for seed in seeds}  # fmt: skip
    teacher = session.teacher()
    wanted = ("accuracy", "agreement", "gradcam/pearson", "cae/pearson", "epoch_seconds")

    def rows() -> list[dict]:
        out = []
        for (name, seed), run in runs.items():
            scores = candidate_scores(run, teacher, session.data, split)
            out.append({"variant": name, "seed": seed,
                        **{k: scores.get(k, float("nan")) for k in wanted},
                        "history": run.history})  # fmt: skip
        return out

    return selection.scored_on(pd.DataFrame(on_rank_zero(rows)), split)


def candidate_scores(run: TrainedModel, teacher: TrainedModel, data, split: str) -> dict:
    """:func:`~xdx_lib.evaluation.scoring.evaluate_model` of one candidate on ``split``
    (Grad-CAM, the claims' similarities, no faithfulness), read from beside its checkpoint
    when there, else computed and written atomically.

    Every chapter that runs the claims makes the same choice; the file keeps them from
    scoring the same candidates again. Its key is the run's, its teacher's, what the run
    attached and the scorer's settings (the split among them).
    """
    settings = layout.scorer_settings({"explainers": ["gradcam"], "n_faithful": 0,
                                       "similarities": list(CLAIM_SIMILARITIES),
                                       "split": split})  # fmt: skip
    key = layout.result_key(run.key, teacher.key, settings, run.method.attached_key)
    path = layout.scores_path(run.path, split)
    cached = read_result(path, key)
    if cached is None:
        cached = {"key": key, "split": split,
                  "scores": evaluate_model(run, teacher, data, explainers=("gradcam",),
                                           n_faithful=0, similarities=CLAIM_SIMILARITIES,
                                           split=split)}  # fmt: skip
        atomic_write_json(cached, path)
    return cached["scores"]


@dataclass
class XDistillChoice:
    """What :func:`choose_xdistill` chose, with its evidence (all on validation).

    Attributes:
        seeds: the tune seeds it trained with.
        cae_epochs: the pre-training epochs picked; ``default_epochs`` if none passed.
        default_epochs: the config's.
        pretraining: stand-alone CAE r by pre-training epochs, with its two checks.
        runs: one row per candidate and seed (:func:`variant_table`).
        checks: one row per variant: :data:`CHECKS` (True, False, None: undecided) and :data:`COST`.
        against_kd: each variant's paired accuracy difference with KD (one-sided 95 % bounds).
        r_alone, mean_reference: the stand-alone CAE's r and the mean-map reference's.
        chosen: the variant picked, None when none passed (or the seeds could not decide).
        baseline_cost: what training KD's student costs, in :data:`COST`'s unit.
        base: the config every candidate changes (:data:`CANDIDATES`), with the CAE and
            the epochs picked: a chapter that reports the candidates on the test split trains
            none again.
        cae: the first step's :class:`CAEChoice`, the CAE every candidate deploys.
    """

    seeds: list
    cae_epochs: int
    default_epochs: int
    pretraining: pd.DataFrame
    runs: pd.DataFrame
    checks: pd.DataFrame
    against_kd: dict
    r_alone: float
    mean_reference: float
    chosen: str | None
    baseline_cost: float = float("nan")
    base: object = None
    cae: CAEChoice | None = None

    @property
    def undecided(self) -> bool:
        """Whether some variant's check could not be decided on these seeds."""
        return bool(self.checks[list(CHECKS)].isna().any().any())

    @property
    def variant(self) -> str:
        """The variant the claims run, the pick or else the defaults."""
        return self.chosen or DEFAULT_VARIANT

    @property
    def options(self) -> dict:
        """The config changes the choice makes, the CAE's when another was picked, the
        picked variant's (none for the defaults') and the pre-training epochs when they
        differ from the config's."""
        out = {**(self.cae.options if self.cae else {}), **VARIANTS[self.variant]}
        if self.cae_epochs != self.default_epochs:
            out["cae_epochs"] = self.cae_epochs
        return out

    @property
    def cost_ratio(self) -> float:
        """What training the defaults costs, in operations, over what KD's student costs."""
        return float(self.checks.loc[DEFAULT_VARIANT, COST] / self.baseline_cost)

    @property
    def decided(self) -> bool:
        """Whether the variant was picked on evidence, not kept for want of it."""
        return self.chosen is not None


def mean_map_reference(session: Session) -> float:
    """Mean Pearson r, on validation images, of the teacher's mean training Grad-CAM with its
    Grad-CAM of each image: what a map that knows nothing of the image reaches."""
    teacher, data = session.teacher(), session.data
    on_val = model_maps(teacher, data.val.x, "gradcam", split="val")
    on_train = model_maps(teacher, data.train.x, "gradcam", split="train")
    mean_map = similarity.reference_maps(on_train, on_val)["mean teacher map"]
    return similarity.pearson(mean_map, on_val).mean().item()


def stand_alone_r(session: Session, cfg, seeds, cae_epochs: int) -> float:
    """Mean validation r, over ``seeds``, of the CAE pre-trained alone on the teacher's maps
    for ``cae_epochs`` (cached), with the teacher's Grad-CAM."""
    data, teacher = session.data, session.teacher()
    target = model_maps(teacher, data.val.x, "gradcam", split="val")
    runs = [pretrain_cae(dataclasses.replace(cfg, seed=s, cae_epochs=cae_epochs), data, teacher,
                         verbose=False) for s in seeds]  # fmt: skip
    return sum(similarity.pearson(predict_maps(r.model, data.val.x), target).mean().item()
               for r in runs) / len(runs)  # fmt: skip


def choose_pretraining(session: Session, cfg, seeds, reference: float) -> tuple[int, pd.DataFrame]:
    """The CAE's pre-training epochs (step 2 of the module's rule), and the table it read:
    ``r`` by epochs, its two checks. Keeps ``cfg.cae_epochs`` when no shorter one passes."""
    epochs = sorted({*PRETRAINING_EPOCHS, cfg.cae_epochs})
    table = selection.scored_on(pd.DataFrame(  # stand_alone_r scores data.val alone
        {"r": {e: stand_alone_r(session, cfg, seeds, e) for e in epochs}}), "val")
    table[f"within {R_WITHIN} of the longest"] = table.r >= table.r.iloc[-1] - R_WITHIN
    above = table.r >= reference + R_ABOVE_REFERENCE
    table[f"{R_ABOVE_REFERENCE} above the mean-map reference"] = above
    checks = list(table.columns[1:])
    chosen = selection.cheapest_passing({"val": table.assign(epochs=table.index)}, checks,
                                        "epochs")  # fmt: skip
    return int(chosen if chosen is not None else cfg.cae_epochs), table


def variant_checks(runs: pd.DataFrame, cfgs: dict, r_alone: float, reference: float,
                   x, num_classes: int) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Each variant's checks (:data:`CHECKS`) and :data:`COST`, from ``runs`` (validation
    scores of the variants and KD), and each variant's paired accuracy difference with KD."""
    summary = stats.summary(runs, ["accuracy", "cae/pearson"], group=None, by="variant")
    r = summary[("cae/pearson", "mean")][list(cfgs)]
    against_kd = {v: stats.paired_difference(runs, v, BASELINE, "accuracy", group=None,
                                             by="variant", confidence=0.90)
                  for v in cfgs}  # fmt: skip
    frame = selection.derived(pd.DataFrame({  # checks of validation scores stay validation's
        CHECKS[0]: r >= r_alone - R_WITHIN,
        CHECKS[1]: r >= reference + R_ABOVE_REFERENCE,
        CHECKS[2]: {v: selection.no_worse(d.lower, d.upper, FRACTION_MARGIN)
                    for v, d in against_kd.items()},  # None: undecided
        COST: {v: training_flops(c, x, num_classes) / 1e9 for v, c in cfgs.items()},
    }), runs)
    return frame, against_kd


def cae_candidates(cfg, widths: dict | None = None) -> dict[str, dict]:
    """The CAEs :func:`choose_cae` compares, by the CAE chapter's row name (``"grid: skips"``):
    each decoder with each variant, as config changes. ``widths``: each decoder's first
    block's channels; by default :data:`CAE_WIDTHS`, the config's own decoder with the
    config's width, so that the config's CAE is among them."""
    widths = widths or {**CAE_WIDTHS, cfg.cae_output: cfg.cae_width}
    return {f"{out}: {variant}": {"cae_output": out, "cae_variant": variant,
                                  "cae_width": widths[out]}
            for out in CAE_OUTPUTS for variant in CAE_VARIANTS}  # fmt: skip


def cae_table(session: Session, cfg, candidates: dict[str, dict], seeds) -> pd.DataFrame:
    """Each candidate CAE pre-trained alone (cached) on every seed and scored on validation:
    one row per CAE and seed, its mean Pearson r (:data:`CAE_METRIC`) with the teacher's
    maps (``cfg.explainer``'s, those it learns) on the validation images, its parameters
    and its training seconds (as recorded when it trained)."""
    data, teacher = session.data, session.teacher()
    target = model_maps(teacher, scored_split(data, "val").x, cfg.explainer, split="val")
    rows = []
    for name, changes in candidates.items():
        for seed in seeds:
            run = pretrain_cae(dataclasses.replace(cfg, seed=seed, **changes), data, teacher,
                               verbose=False)  # fmt: skip
            r = similarity.pearson(predict_maps(run.model, data.val.x), target).mean().item()
            rows.append({"cae": name, "seed": seed, CAE_METRIC: r,
                         "parameters": count_parameters(run.model),
                         "train s": run.seconds})  # fmt: skip
    return selection.scored_on(pd.DataFrame(rows), "val")


@dataclass
class CAEChoice:
    """What :func:`choose_cae` chose, with its evidence (validation).

    Attributes:
        seeds: the tune seeds each candidate was pre-trained with.
        runs: :func:`cae_table`'s rows, one per CAE and seed.
        default: the config's CAE, by name.
        leader: the CAE of highest mean validation r.
        chosen: the CAE the claims deploy when the seeds decided (the leader shown better
            than the default, or the default leading), None when they could not.
        gain: the leader's paired r gain over the default (one-sided 95 % bounds), None
            when the default leads.
        candidates: each CAE's config changes (:func:`cae_candidates`).
    """

    seeds: list
    runs: pd.DataFrame
    default: str
    leader: str
    chosen: str | None
    gain: object
    candidates: dict

    @property
    def cae(self) -> str:
        """The CAE the claims deploy, the pick or else the default."""
        return self.chosen or self.default

    @property
    def decided(self) -> bool:
        """Whether the seeds decided, rather than the default kept for want of evidence."""
        return self.chosen is not None

    @property
    def options(self) -> dict:
        """The config changes the choice makes (none when the default stays)."""
        return {} if self.cae == self.default else dict(self.candidates[self.cae])

    def summary(self) -> pd.DataFrame:
        """One row per CAE: mean and sd of its validation r over the seeds, its parameters."""
        grouped = self.runs.groupby("cae", sort=False)
        table = pd.DataFrame({"val r": grouped[CAE_METRIC].mean(),
                              "val r sd": grouped[CAE_METRIC].std(),
                              "parameters": grouped["parameters"].first()})  # fmt: skip
        return selection.derived(table, self.runs)


def choose_cae(session: Session, cfg, seeds, widths: dict | None = None) -> CAEChoice:
    """The CAE XDistillation deploys, chosen on validation (:func:`cae_candidates`, each
    pre-trained alone for ``cfg.cae_epochs`` on every seed): the one of highest mean r with
    the teacher's Grad-CAM, kept only if the seeds show it above the config's CAE
    (:func:`~xdx_lib.analysis.selection.shown_better`); else the config's stays, said so.
    ``widths``: the candidates' (:func:`cae_candidates`; the CAE chapter's parameters)."""
    seeds = list(seeds)
    candidates = cae_candidates(cfg, widths)
    runs = cae_table(session, cfg, candidates, seeds)
    default = f"{cfg.cae_output}: {cfg.cae_variant}"
    chosen, leader, gain = selection.shown_better({"val": runs}, "cae", CAE_METRIC, default)
    return CAEChoice(seeds, runs, default, leader, chosen, gain, candidates)


def choose_xdistill(session: Session, seeds) -> XDistillChoice:
    """XDistillation's CAE, pre-training epochs, schedule, routing and fusion, chosen on
    validation with students of ``seeds`` (the module's rule), from ``session``'s config
    with the library's :data:`DEFAULTS`; its data and teacher serve every candidate."""
    seeds = list(seeds)
    base = dataclasses.replace(session.cfg, method="xdistill", **DEFAULTS)
    cae = choose_cae(session, base, seeds)
    base = dataclasses.replace(base, **cae.options)
    reference = mean_map_reference(session)
    cae_epochs, pretraining = choose_pretraining(session, base, seeds, reference)
    base = dataclasses.replace(base, cae_epochs=cae_epochs)
    chapter = Session(base, session.data, session.teacher())
    runs = variant_table(chapter, CANDIDATES, seeds, split="val")
    cfgs = {v: dataclasses.replace(base, **changes) for v, changes in VARIANTS.items()}
    r_alone = pretraining.r[cae_epochs]
    x = session.data.train.x[:8]  # the shape the operations are counted on
    checks, against_kd = variant_checks(runs, cfgs, r_alone, reference, x,
                                        session.data.num_classes)  # fmt: skip
    chosen = selection.xdistill_variant(
        {"val": checks}, {"val": runs[["variant", "seed", "accuracy"]]}, list(CHECKS), COST,
        DEFAULT_VARIANT)  # fmt: skip
    kd_cost = training_flops(dataclasses.replace(base, method="kd"), x, session.data.num_classes)
    return XDistillChoice(seeds, cae_epochs, session.cfg.cae_epochs, pretraining, runs, checks,
                          against_kd, float(r_alone), reference, chosen, kd_cost / 1e9,
                          base, cae)  # fmt: skip


def apply_choice(exp: ExperimentConfig, choice: XDistillChoice) -> ExperimentConfig:
    """``exp`` running what ``choice`` picked: its options written into the shared run
    fields (nothing changes when the defaults stay)."""
    return exp.with_run(**choice.options) if choice.options else exp
