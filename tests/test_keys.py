"""Metric keys: built, taken apart and picked out of a result's columns in one place."""

from xdx_lib.metrics import names as keys

RESULT_COLUMNS = ["method", "seed", "accuracy", "cae/pearson", "cae/topk_iou",
                  "cae_faith/deletion", "cae_faith_teacher/insertion", "deployed/pearson",
                  "faith/deletion", "faith_teacher/insertion", "gradcam/pearson",
                  "gradcam/pointing_game", "cae/relevance_mass", "n_faithful"]  # fmt: skip


def test_metric_keys_are_built_and_taken_apart_in_one_place():
    assert keys.metric_key(keys.CAE, "pearson") == "cae/pearson"
    assert keys.metric_key(keys.DEPLOYED, "topk_iou") == "deployed/topk_iou"
    assert keys.faithfulness_key("gradcam", "model", "deletion") == "faith/deletion"
    assert keys.faithfulness_key("cae", "teacher", "insertion") == (
        "cae_faith_teacher/insertion")
    assert keys.split_key("faith_teacher/deletion") == ("faith_teacher", "deletion")
    assert keys.split_key("accuracy") == ("", "accuracy")


def test_key_families_are_picked_out_of_columns_in_their_order():
    assert keys.keys_of(RESULT_COLUMNS, keys.CAE) == [
        "cae/pearson", "cae/topk_iou", "cae/relevance_mass"]
    assert keys.keys_of(RESULT_COLUMNS, "gradcam") == ["gradcam/pearson",
                                                          "gradcam/pointing_game"]
    assert keys.faithfulness_keys(RESULT_COLUMNS) == [
        "cae_faith/deletion", "cae_faith_teacher/insertion", "faith/deletion",
        "faith_teacher/insertion"]  # not n_faithful, whose name merely holds "faith"
    assert keys.localisation_keys(RESULT_COLUMNS) == ["gradcam/pointing_game",
                                                         "cae/relevance_mass"]
    assert keys.localisation_keys(["pointing_game"]) == []  # a bare name is no map's
