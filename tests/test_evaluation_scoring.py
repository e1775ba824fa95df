"""Evaluation without a network: per-sample records and their ground truth, scoring parity with
naive per-sample loops, the metric groups' data checks, the overlay grid and the floors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from harness import random_records

from avloc.errors import DataError
from avloc.evaluation.scoring import score_records
from avloc.maps.records import SampleRecords, load_records, save_records
from avloc.metrics import ground_truth_maps, gt_flickr, gt_from_boxes_normalized
from avloc.utils.interpolation import upsample

# --------------------------------------------------------------------------------------------
# numpy pieces


def test_numpy_upsampling_equals_the_network_upsampling():
    from keras import ops

    from avloc.models import upsample_maps

    maps = np.random.default_rng(0).standard_normal((3, 7, 5)).astype(np.float32)
    ours = upsample(maps, 23)[:, :, :23]
    theirs = ops.convert_to_numpy(upsample_maps(maps, (23, 23)))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    # aligned corners: the four corners are the input corners
    np.testing.assert_allclose(ours[:, 0, 0], maps[:, 0, 0], atol=1e-6)
    np.testing.assert_allclose(ours[:, -1, -1], maps[:, -1, -1], atol=1e-6)


def test_records_round_trip_and_reject_foreign_files(tmp_path):
    rec = random_records(groups=np.array(["g0", "g0", "g1", "g1", "g2", "g2"]))
    path = save_records(rec, tmp_path / "r.npz")
    back = load_records(path)
    assert list(back.ids) == list(rec.ids) and back.gt_rule == "boxes" and back.map_size == 20
    for c in rec.maps:
        np.testing.assert_array_equal(back.maps[c], rec.maps[c])
    np.testing.assert_array_equal(back.boxes, rec.boxes)
    assert list(back.groups) == list(rec.groups) and back.meta == {"model": "m"}
    assert back.mask is None and back.box_group is None
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(DataError, match="bad.npz: not an avloc per-sample results file"):
        load_records(tmp_path / "bad.npz")


def test_ground_truth_rules_match_spec_conversions():
    # VGG-SS: normalised boxes, union, int(v * S).
    rec = random_records()
    gts = ground_truth_maps(rec, [0, 1, 2], 20)
    for row, i in enumerate([0, 1, 2]):
        boxes = rec.boxes[i][~np.isnan(rec.boxes[i]).any(axis=1)]
        np.testing.assert_array_equal(gts[row], gt_from_boxes_normalized(boxes, 20))
    # Flickr: 256 px boxes stored as v / 256 per annotator -> the exact int(224 * v / 256) rule.
    ann = [np.array([[13, 40, 200, 255]]), np.array([[100, 7, 256, 181], [0, 0, 31, 33]])]
    stored = np.full((1, 3, 4), np.nan, np.float32)
    stored[0, 0], stored[0, 1:] = ann[0][0] / 256, ann[1] / 256
    owner = np.array([[0, 1, 1]], np.int32)
    flickr = SampleRecords(
        ids=np.array(["f"]),
        maps={"positive": np.zeros((1, 2, 2), np.float32)},
        image_emb=np.zeros((1, 2), np.float32),
        audio_emb=np.zeros((1, 2), np.float32),
        map_size=224,
        gt_rule="consensus",
        boxes=stored,
        box_group=owner,
    )
    got = ground_truth_maps(flickr, [0], 224)[0]
    np.testing.assert_array_equal(got, gt_flickr(ann, 224))
    assert set(np.unique(got)) == {0.0, 0.5, 1.0}
    # masks: nearest-neighbour resize to the map size
    mask = np.zeros((1, 10, 10), np.uint8)
    mask[0, 2:6, 4:10] = 1
    masked = random_records(n=1, rule="mask", mask=mask)
    got = ground_truth_maps(masked, [0], 20)[0]
    assert got.sum() == 4 * 6 * 4 and got[4:12, 8:20].all()


def test_the_shards_ground_truth_rule_and_stored_boxes():
    from types import SimpleNamespace

    from avloc.metrics.ground_truth import GT_FIELDS, gt_rule_of, stored_boxes

    def shards(attrs, fields):
        return SimpleNamespace(attrs=attrs, fields=fields)

    assert gt_rule_of(shards({"ground_truth": "consensus"}, ["boxes"])) == "consensus"
    assert gt_rule_of(shards({}, ["id", "box"])) == "boxes"
    assert gt_rule_of(shards({}, ["id", "boxes"])) == "boxes"
    assert gt_rule_of(shards({}, ["id", "mask"])) == "mask"
    assert gt_rule_of(shards({}, ["id", "image"])) == ""
    assert set(GT_FIELDS) == {"boxes", "box", "box_group", "mask"}
    box = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.9]], np.float32)
    assert stored_boxes({"box": box}).shape == (2, 1, 4)
    np.testing.assert_array_equal(stored_boxes({"box": box})[:, 0], box)
    many = np.full((2, 3, 4), np.nan, np.float32)
    assert stored_boxes({"boxes": many, "box": box}) is many  # all the boxes win over one
    assert stored_boxes({"id": np.array(["a"])}) is None


def _naive_ciou(pred, gt):
    inter = sum(pred[y, x] * gt[y, x] for y in range(gt.shape[0]) for x in range(gt.shape[1]))
    denom = gt.sum() + sum(
        pred[y, x] for y in range(gt.shape[0]) for x in range(gt.shape[1]) if gt[y, x] == 0
    )
    return inter / denom if denom else 0.0


def test_scoring_matches_a_naive_per_sample_loop():
    rec = random_records(n=7)
    uth = 0.3
    scores = score_records(rec, uth, chunk=3)
    size = rec.map_size
    naive = {"median": [], "adaptive": [], "universal": []}
    pia = {c: [] for c in ("silence", "noise", "offscreen")}
    for i in range(len(rec)):
        heat = upsample(rec.maps["positive"][i : i + 1], size)[0].astype(np.float64)
        gt = ground_truth_maps(rec, [i], size)[0]
        norm = (heat - heat.min()) / (heat.max() - heat.min())
        median_pred = norm >= np.sort(norm.ravel())[size * size // 2]
        k = int((gt > 0).sum())
        top = np.zeros(size * size, bool)
        top[np.argsort(-heat.ravel(), kind="stable")[:k]] = True
        naive["median"].append(_naive_ciou(median_pred, gt))
        naive["adaptive"].append(_naive_ciou(top.reshape(size, size), gt))
        naive["universal"].append(_naive_ciou(heat > uth, gt))
        for c in pia:
            neg = upsample(rec.maps[c][i : i + 1], size)[0]
            pia[c].append(float((neg > uth).sum()) / (size * size))
    for family, values in naive.items():
        np.testing.assert_allclose(scores.per_sample[f"ciou/{family}"], values, atol=1e-12)
        m = scores.metrics["positive"][family]
        assert m["ciou_mean"] == pytest.approx(100 * np.mean(values))
        assert m["ciou_at_05"] == pytest.approx(100 * np.mean(np.array(values) >= 0.5))
    pct = {c: 100 * np.mean(v) for c, v in pia.items()}
    for c in pia:
        assert scores.metrics[c]["pia"] == pytest.approx(pct[c])
    ciou_uth = 100 * np.mean(naive["universal"])
    keep = np.mean([100 - pct[c] for c in pct])
    floc = 2 * ciou_uth * keep / (ciou_uth + keep) if ciou_uth + keep else 0.0
    assert scores.metrics["global"]["floc"] == pytest.approx(floc)
    # Separability: Q1 of positive maxima minus Q3 of the pooled negative maxima.
    pos = [upsample(rec.maps["positive"][i : i + 1], size).max() for i in range(len(rec))]
    neg = [upsample(rec.maps[c][i : i + 1], size).max() for c in pia for i in range(len(rec))]
    sep = np.percentile(pos, 25) - np.percentile(neg, 75)
    assert scores.metrics["global"]["sep"] == pytest.approx(sep, abs=1e-6)
    # chunking never changes a number
    whole = score_records(rec, uth, chunk=1000)
    assert json.dumps(whole.metrics, sort_keys=True) == json.dumps(scores.metrics, sort_keys=True)


def test_slavc_detection_scores_visible_pairs_against_offscreen_and_silent_ones():
    """SLAVC's AP / max-F1 from per-pair confidence and cIoU at cos >= 0, recomputed here
    pair by pair (noise is not one of SLAVC's non-sounding kinds and stays out)."""
    from references import naive_ap, naive_max_f1

    rec = random_records(n=9, seed=5)
    scores = score_records(rec, 0.3, chunk=4)
    size = rec.map_size
    visible, cious, confidence = [], [], []
    for condition in ("positive", "offscreen", "silence"):
        for i in range(len(rec)):
            heat = upsample(rec.maps[condition][i : i + 1], size)[0].astype(np.float64)
            scores_01 = np.sort(((heat + 1) / 2).ravel())
            confidence.append(scores_01[-int(np.ceil(size * size / 4)) :].mean())
            visible.append(condition == "positive")
            gt = ground_truth_maps(rec, [i], size)[0]
            cious.append(_naive_ciou(heat >= 0, gt) if condition == "positive" else 0.0)
    slavc = scores.metrics["slavc"]
    assert slavc["ap"] == pytest.approx(100 * naive_ap(visible, cious, confidence))
    assert slavc["max_f1"] == pytest.approx(100 * naive_max_f1(visible, cious, confidence))


def test_retrieval_in_scores_matches_a_naive_ranking_loop():
    rec = random_records(n=12, seed=3)
    got = score_records(rec, 0.3).metrics["retrieval"]
    a = rec.audio_emb / np.linalg.norm(rec.audio_emb, axis=1, keepdims=True)
    v = rec.image_emb / np.linalg.norm(rec.image_emb, axis=1, keepdims=True)
    for k in (1, 5, 10):
        inst = sem = 0
        for q in range(len(rec)):
            ranked = sorted(range(len(rec)), key=lambda j, q=q: -float(a[q] @ v[j]))[:k]
            inst += q in ranked
            sem += any(rec.labels[j] == rec.labels[q] for j in ranked)
        assert got[f"a2i_instance_R@{k}"] == pytest.approx(100 * inst / len(rec))
        assert got[f"a2i_semantic_R@{k}"] == pytest.approx(100 * sem / len(rec))


def test_interactive_and_s4_sections_appear_for_grouped_mask_data():
    n = 6
    mask = np.zeros((n, 20, 20), np.uint8)
    mask[:, 5:15, 5:15] = 1
    groups = np.array(["a", "a", "b", "b", "c", "c"])
    rec = random_records(n=n, rule="mask", mask=mask, groups=groups)
    metrics = score_records(rec, 0.3).metrics
    assert set(metrics["s4"]) == {"miou_median", "miou_adaptive", "miou_universal", "fscore"}
    per = score_records(rec, 0.3).per_sample["ciou/universal"].reshape(3, 2)
    expected = 100 * np.mean(np.all(per >= 0.5, axis=1))
    assert metrics["interactive"]["universal"]["iiou"] == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# the report: metric groups, overlays, floors


def test_interactive_metrics_need_images_with_two_sounds():
    from avloc.errors import DataError
    from avloc.jobs.evaluate import _check_metric_groups

    lonely = random_records(n=4, groups=np.array(["a", "b", "c", "d"]))  # one sound per image
    with pytest.raises(DataError, match="images with two sounds.*interactive"):
        _check_metric_groups(["interactive"], lonely, "shards")
    paired = random_records(n=4, groups=np.array(["a", "a", "b", "c"]))
    _check_metric_groups(["interactive"], paired, "shards")  # one image with two sounds
    assert "interactive" in score_records(paired, 0.3).metrics


def test_overlay_grid_draws_the_ground_truth_contour(tmp_path):
    from PIL import Image

    from avloc.evaluation.report import overlay_grid

    n, size = 2, 40
    images = np.zeros((n, size, size, 3), np.uint8)
    maps = {"positive": np.zeros((n, size, size), np.float32)}
    maps["positive"][:, 0, 0] = 1.0  # a colour scale; the rest of the map is one colour
    gt = np.zeros((n, size, size), np.float32)
    gt[:, 10:30, 10:30] = 1.0
    ids = ["a-very-long-sample-identifier-0001", "b"]
    classes = ["dog", "cat"]
    empty = np.zeros_like(gt)  # nothing to draw: the same figure without contours
    plain = overlay_grid(
        "m", images, maps, 2.0, ids, tmp_path / "plain.png", ground_truth=empty, classes=classes
    )
    drawn = overlay_grid(
        "m", images, maps, 2.0, ids, tmp_path / "gt.png", ground_truth=gt, classes=classes
    )
    a = np.asarray(Image.open(plain).convert("RGB")).astype(int)
    b = np.asarray(Image.open(drawn).convert("RGB")).astype(int)
    assert a.shape == b.shape
    changed = np.abs(a - b).sum(axis=2) > 150
    assert changed.sum() > 50  # the contours
    lighter = b[changed].sum(axis=1) > a[changed].sum(axis=1)
    assert lighter.mean() > 0.95  # light strokes on the dark tiles where the picture changed
    rows, cols = np.nonzero(changed)
    assert (b[rows, cols] > 200).all(axis=1).sum() > 50  # and white at their core


def test_floors_score_what_an_audio_free_map_gets():
    from avloc.evaluation.floors import FLOOR_UTH, floor_maps, floor_records
    from avloc.jobs.evaluate import floor_rows

    rec = random_records(n=6)
    whole = score_records(floor_records(rec, "whole image"), FLOOR_UTH).metrics
    for condition in ("silence", "noise", "offscreen"):
        assert whole[condition]["pia"] == 100.0  # never abstains
    # The whole-image map's universal cIoU is the box area over the image, per sample.
    gts = ground_truth_maps(rec, np.arange(6), rec.map_size)
    expected = 100 * np.mean(gts.sum(axis=(1, 2)) / gts[0].size)
    assert whole["positive"]["universal"]["ciou_mean"] == pytest.approx(expected, rel=1e-6)
    random = floor_maps("random map", 3, 4, 4, seed=7)
    assert np.array_equal(random, floor_maps("random map", 3, 4, 4, seed=7))
    assert not np.array_equal(random[0], random[1])
    centre = floor_maps("centre prior", 1, 5, 5)[0]
    assert centre.argmax() == 12 and centre.max() == pytest.approx(np.exp(-0.0))
    rows = floor_rows(rec, None, seed=0)
    assert [r["name"] for r in rows] == ["floor: whole image", "floor: centre prior",
                                         "floor: random map"]  # fmt: skip
    assert all(r["floor"] and "retrieval" not in r["metrics"] for r in rows)
    seps = [r["metrics"]["global"]["sep"] for r in rows]
    assert seps[0] == pytest.approx(0.0) and seps[1] == pytest.approx(0.0)  # equal maxima
    assert seps[2] <= 0.0  # Q1 minus Q3 of one distribution
