"""Decoders on hand-built output tensors whose right answers are known."""

import math

import numpy as np
import pytest

from edge_agent.config import (
    ClassificationPost,
    NmsSettings,
    RawPost,
    SegmentationPost,
    SsdPost,
    YoloPost,
)
from edge_agent.errors import InputError
from edge_agent.pipeline.postprocess import (
    build_postprocessor,
    classify,
    decode_ssd_boxes,
    detect_ssd,
    detect_yolo,
    raw_outputs,
    segmentation_summary,
    top_k,
)
from edge_agent.pipeline.preprocess import Geometry

SCALE = (10.0, 10.0, 5.0, 5.0)


def test_top_k_orders_and_breaks_ties_by_index():
    assert top_k(np.array([0.1, 0.5, 0.5, 0.2]), 3) == [(1, 0.5), (2, 0.5), (3, 0.2)]
    assert top_k(np.array([1.0]), 5) == [(0, 1.0)]


def test_classification_with_labels_and_softmax():
    logits = np.log(np.array([[0.1, 0.7, 0.2]], np.float32))
    result = classify(
        {"p": logits},
        ClassificationPost(type="classification", top_k=2, softmax=True),
        ["a", "b", "c"],
    )
    assert [t["label"] for t in result["top"]] == ["b", "c"]
    assert result["top"][0]["score"] == pytest.approx(0.7, abs=1e-5)


def encode(boxes_cyxhw: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """The SSD box coder's forward direction, to build encodings with a known answer."""
    cy, cx, h, w = boxes_cyxhw.T
    cya, cxa, ha, wa = anchors.T
    return np.stack(
        [
            (cy - cya) / ha * SCALE[0],
            (cx - cxa) / wa * SCALE[1],
            np.log(h / ha) * SCALE[2],
            np.log(w / wa) * SCALE[3],
        ],
        axis=1,
    )


def test_ssd_box_decoding_inverts_the_encoder():
    anchors = np.array([[0.5, 0.5, 0.2, 0.2], [0.25, 0.75, 0.1, 0.3]])
    truth = np.array([[0.55, 0.45, 0.3, 0.1], [0.2, 0.8, 0.1, 0.2]])
    corners = decode_ssd_boxes(encode(truth, anchors), anchors, SCALE)
    cy, cx, h, w = truth.T
    assert np.allclose(corners, np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], 1))


def ssd_case():
    # Anchors 0 and 1 see the same object (class "cat"), anchor 2 a dog overlapping it,
    # anchor 3 only background.
    anchors = np.array([[0.5, 0.5, 0.4, 0.4]] * 4)
    truth = np.array(
        [[0.5, 0.5, 0.4, 0.4], [0.52, 0.5, 0.4, 0.4], [0.5, 0.55, 0.4, 0.4], [0.2, 0.2, 0.1, 0.1]]
    )
    scores = np.array([[0.05, 0.90, 0.05], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.98, 0.01, 0.01]])
    return anchors, encode(truth, anchors)[None], scores[None]


def test_ssd_decode_then_per_class_nms():
    anchors, boxes, scores = ssd_case()
    settings = SsdPost(type="ssd", nms=NmsSettings(score_threshold=0.5, iou_threshold=0.5))
    geometry = Geometry(200, 100, 100, 100, 0.5, 1.0, 0.0, 0.0)  # frame 200x100 -> 100x100
    found = detect_ssd({"b": boxes, "s": scores}, settings, ["cat", "dog"], anchors, geometry)[
        "detections"
    ]
    assert [(d["label"], d["score"]) for d in found] == [("cat", 0.9), ("dog", 0.8)]
    # cat: corners (0.3, 0.3)-(0.7, 0.7) of a 100x100 input = x 60..140 and y 30..70 in frame
    assert found[0]["box"] == pytest.approx([60.0, 30.0, 140.0, 70.0], abs=1e-6)


def test_ssd_class_agnostic_nms_keeps_one_box_per_object():
    anchors, boxes, scores = ssd_case()
    settings = SsdPost(
        type="ssd", nms=NmsSettings(score_threshold=0.5, iou_threshold=0.5, class_agnostic=True)
    )
    found = detect_ssd({"b": boxes, "s": scores}, settings, None, anchors, None)["detections"]
    assert [(d["class"], d["score"]) for d in found] == [(0, 0.9)]


def test_ssd_with_decoded_corner_boxes_and_no_background():
    boxes = np.array([[[0.1, 0.2, 0.3, 0.4]]])
    scores = np.array([[[0.3, 0.6]]])
    settings = SsdPost(type="ssd", background_class=False)
    found = detect_ssd({"b": boxes, "s": scores}, settings, None, None, None)["detections"]
    assert found == [{"class": 1, "label": None, "score": 0.6, "box": [0.2, 0.1, 0.4, 0.3]}]


def yolo_rows(objectness: bool) -> np.ndarray:
    # Two overlapping boxes of class 1 and a far box of class 0, in 64x64 input pixels.
    boxes = [(32, 32, 20, 20), (33, 32, 20, 20), (8, 8, 8, 8), (50, 50, 4, 4)]
    classes = [(0.1, 0.9), (0.2, 0.7), (0.8, 0.1), (0.05, 0.05)]
    rows = []
    for box, cls in zip(boxes, classes, strict=True):
        rows.append([*box, 1.0, *cls] if objectness else [*box, *cls])
    padding = [[0.0] * len(rows[0])] * 16  # real exports have thousands of empty candidates
    return np.array(rows + padding, np.float32)


def test_yolo_v5_rows_with_objectness_and_letterbox():
    settings = YoloPost(type="yolo", nms=NmsSettings(score_threshold=0.3, iou_threshold=0.5))
    # Frame 128x64 letterboxed into 64x64: scale 0.5, 16 pixels of padding above and below.
    geometry = Geometry(128, 64, 64, 64, 0.5, 0.5, 0.0, 16.0)
    found = detect_yolo({"out": yolo_rows(True)[None]}, settings, ["a", "b"], geometry)[
        "detections"
    ]
    assert [(d["label"], d["score"]) for d in found] == [("b", 0.9), ("a", 0.8)]
    assert found[0]["box"] == pytest.approx([44.0, 12.0, 84.0, 52.0])
    assert found[1]["box"] == pytest.approx([8.0, 0.0, 24.0, 0.0])  # clipped to the frame


def test_yolo_v8_transposed_export_is_recognised():
    settings = YoloPost(
        type="yolo", objectness=False, nms=NmsSettings(score_threshold=0.3, iou_threshold=0.5)
    )
    transposed = yolo_rows(False).T[None]  # [1, 4 + C, N]
    found = detect_yolo({"out": transposed}, settings, None, None)["detections"]
    assert [(d["class"], d["score"]) for d in found] == [(1, 0.9), (0, 0.8)]
    assert found[0]["box"] == pytest.approx([22.0, 22.0, 42.0, 42.0])


def test_yolo_objectness_multiplies_class_scores():
    rows = np.array([[[10, 10, 4, 4, 0.5, 0.9, 0.1]]], np.float32)
    found = detect_yolo({"o": rows}, YoloPost(type="yolo"), ["a", "b"], None)["detections"]
    assert found[0]["score"] == pytest.approx(0.45)


def test_yolo_rejects_outputs_without_class_scores():
    with pytest.raises(InputError, match="no class scores"):
        detect_yolo({"o": np.zeros((1, 10, 5), np.float32)}, YoloPost(type="yolo"), None, None)


def test_segmentation_summary_from_scores_and_from_a_class_map():
    class_map = np.zeros((4, 5), np.int64)
    class_map[:, :2] = 2
    scores = np.eye(3, dtype=np.float32)[class_map]  # [4, 5, 3] one-hot
    settings = SegmentationPost(type="segmentation")
    for output in (scores[None], scores.transpose(2, 0, 1)[None], class_map[None]):
        result = segmentation_summary({"m": output}, settings, ["road", "car", "sky"])
        assert result["dominant"] == {"index": 0, "label": "road", "fraction": 0.6}
        assert [c["label"] for c in result["classes"]] == ["road", "sky"]


def test_raw_outputs_truncate_big_tensors():
    result = raw_outputs(
        {"a": np.arange(3), "b": np.zeros(100)}, RawPost(type="raw", max_values=10)
    )
    assert result["outputs"]["a"]["data"] == [0, 1, 2]
    assert result["outputs"]["b"] == {"shape": [100], "dtype": "float64", "truncated": True}


def test_labels_file_and_anchors_file_are_loaded_once(tmp_path):
    (tmp_path / "labels.txt").write_text("zero\none\n")
    post = build_postprocessor(
        ClassificationPost(type="classification", labels_file=tmp_path / "labels.txt"), ()
    )
    assert post({"p": np.array([[0.2, 0.8]])}, None)["top"][0]["label"] == "one"
    np.save(tmp_path / "bad.npy", np.zeros((3, 3)))
    with pytest.raises(InputError, match=r"\[N, 4\]"):
        build_postprocessor(SsdPost(type="ssd", anchors_file=tmp_path / "bad.npy"), ())
    assert math.isfinite(1.0)
