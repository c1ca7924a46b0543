"""Quantize-and-convert: from a trained model to a verified, profiled edge package.

The flow the CLI (``edge-agent convert``) drives, one module per step::

    calibration.py   samples from an image folder / .npy / .npz, fitted to a model's inputs
    prepare.py       models as they come: opset < 13 converted up, open input dims pinned
    quantize_onnx.py ONNX -> int8 ONNX with onnxruntime.quantization (dynamic or static QDQ)
    tflite.py        Keras / SavedModel -> TFLite (float32, float16, dynamic, full int8)
    onnx2tflite.py   ONNX -> TFLite through onnx2tf (NCHW -> NHWC), optionally int8
    evaluate.py      candidate vs reference through edge_agent.runtime (the device code path);
                     metrics.py and gates.py hold the pure arithmetic and the pass/fail decision
    package.py       model + manifest (edge_agent.manifest) + profile + evaluation, ready to sign
    auto.py          `convert auto`: every recipe the target runs, evaluated; the best packaged
    selection.py     which recipes a device class runs and which candidate wins (pure)

Nothing here imports TensorFlow, onnx or onnx2tf at module level: a device install can import
the CLI and gets a clear "pip install 'edge-agent[convert]'" error only when it converts.
"""
