import numpy as np
import pytest

from edge_agent.config import PreprocessSettings
from edge_agent.errors import InputError
from edge_agent.pipeline.preprocess import ImagePreprocessor, TensorPreprocessor, resolve_plan
from edge_agent.runtime.base import Quantization, TensorSpec

NHWC = TensorSpec("input", (1, 32, 32, 3), np.dtype("float32"))
NCHW = TensorSpec("input", (-1, 3, 32, 32), np.dtype("float32"))
INT8 = TensorSpec("input", (1, 32, 32, 3), np.dtype("int8"), Quantization(1 / 255, -128))
GRAY = TensorSpec("input", (1, 8, 8, 1), np.dtype("float32"))


def bgr(h: int, w: int, value=(10, 20, 30)) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = value
    return image


def test_defaults_come_from_the_input_spec():
    plan = resolve_plan(PreprocessSettings(), NHWC)
    assert (plan.layout, plan.height, plan.width, plan.color) == ("NHWC", 32, 32, "rgb")
    inputs, geometry = ImagePreprocessor(plan)(bgr(64, 64))
    x = inputs["input"]
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.float32
    # BGR (10, 20, 30) -> RGB, scaled to [0, 1]
    assert np.allclose(x[0, 0, 0], [30 / 255, 20 / 255, 10 / 255])
    assert geometry.scale_x == 0.5


def test_nchw_layout_mean_std():
    settings = PreprocessSettings(mean=[0.5], std=[0.25], color="bgr")
    inputs, _ = ImagePreprocessor(resolve_plan(settings, NCHW))(bgr(32, 32))
    x = inputs["input"]
    assert x.shape == (1, 3, 32, 32)
    assert np.allclose(x[0, :, 0, 0], [(v / 255 - 0.5) / 0.25 for v in (10, 20, 30)], atol=1e-6)


def test_config_overrides_the_manifest_which_overrides_the_spec():
    manifest = {"kind": "image", "scale": 1.0, "mean": [1, 2, 3], "color": "bgr"}
    plan = resolve_plan(PreprocessSettings(mean=[0.0]), NHWC, manifest)
    assert plan.color == "bgr"
    assert np.allclose(plan.offset, 0.0) and np.allclose(plan.multiplier, 1.0)


def test_int8_inputs_are_quantized_with_the_spec_parameters():
    inputs, _ = ImagePreprocessor(resolve_plan(PreprocessSettings(), INT8))(
        bgr(32, 32, (0, 128, 255))
    )
    x = inputs["input"]
    assert x.dtype == np.int8
    assert x[0, 0, 0].tolist() == [127, 0, -128]  # RGB: 255 -> 127, 128 -> 0, 0 -> -128


def test_gray_model_gets_one_channel():
    inputs, _ = ImagePreprocessor(resolve_plan(PreprocessSettings(), GRAY))(bgr(16, 16))
    assert inputs["input"].shape == (1, 8, 8, 1)


def test_letterbox_keeps_aspect_and_maps_back_to_the_frame():
    plan = resolve_plan(PreprocessSettings(letterbox=True, pad_value=0, color="bgr"), NHWC)
    inputs, g = ImagePreprocessor(plan)(bgr(50, 100, (255, 255, 255)))
    x = inputs["input"][0]
    assert (g.scale_x, g.pad_x, g.pad_y) == (0.32, 0.0, 8.0)
    assert x[0, :, 0].max() == 0.0 and x[16, :, 0].min() == 1.0  # pad rows then image
    assert g.to_frame(16.0, 16.0) == (50.0, 25.0)


@pytest.mark.parametrize(
    ("settings", "spec", "message"),
    [
        (PreprocessSettings(color="gray"), NHWC, "does not fit"),
        (PreprocessSettings(mean=[1, 2]), NHWC, "give 1 or 3"),
        (
            PreprocessSettings(),
            TensorSpec("input", (1, -1, -1, 3), np.dtype("float32")),
            "preprocess.resize",
        ),
        (PreprocessSettings(), TensorSpec("input", (1, 10), np.dtype("float32")), "not an image"),
    ],
)
def test_impossible_plans_are_clear_errors(settings, spec, message):
    with pytest.raises(InputError, match=message):
        resolve_plan(settings, spec)


def test_tensor_inputs_are_fitted_and_missing_ones_named():
    pre = TensorPreprocessor([NCHW])
    out = pre({"": np.zeros((32, 32, 3), np.float64)})
    assert out["input"].shape == (1, 3, 32, 32) and out["input"].dtype == np.float32
    with pytest.raises(InputError, match="input"):
        pre({"other": np.zeros(3)})
