"""What a missing runtime tells the user, per CPU kind (no runtime needed to test it)."""

from __future__ import annotations

from edge_agent.runtime.onnx import onnxruntime_missing_message


def test_missing_onnxruntime_on_64_bit_names_the_extra():
    for machine in ("aarch64", "x86_64"):
        assert "pip install 'edge-agent[onnx]'" in onnxruntime_missing_message(machine)


def test_missing_onnxruntime_on_32_bit_arm_does_not_send_the_user_to_the_empty_extra():
    """The onnx extra installs nothing on armv7l (no wheel); repeating it would loop the user."""
    message = onnxruntime_missing_message("armv7l")
    assert "edge-agent[onnx]" not in message
    assert "armv7l" in message and ".tflite" in message and "64-bit" in message
