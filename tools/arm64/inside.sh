#!/bin/bash
# Runs inside the arm64 root filesystem (tools/arm64/run.sh chroots here), emulated by qemu.
#
# What a Pi owner does on a fresh Bookworm 64-bit: a venv, `pip install` of edge-agent with the
# device extras, then doctor, infer and bench on the sample models. Then the device tests that
# matter on another architecture: the LiteRT and ONNX Runtime backends (delegate loading,
# fallback, int8 and fp32 results) and the agent end to end with Debian's arm64 Mosquitto.
#
# Dependencies come as wheels only (--only-binary :all:): a Pi has no compiler time to spare,
# and a dependency without an arm64 wheel must show up here as a failure, not a slow build.
# Emulated SIMD code runs about 300 times slower than native, so inference stays tiny.
set -euo pipefail

SRC=/work/src
CHECK=/work/check
VENV=/opt/edge-agent/venv
# The device test subset (paths relative to the checkout), or ARM64_TESTS to pick others.
DEVICE_TESTS="tests/unit/runtime
    tests/unit/test_zstd.py
    tests/integration/test_litert_backend.py
    tests/integration/test_onnx_backend.py
    tests/integration/test_agent.py
    tests/integration/test_cli_runtime.py::test_doctor_finds_both_runtimes_and_runs_the_probe_on_cpu"
TESTS=${ARM64_TESTS:-$DEVICE_TESTS}

step() { printf '== arm64 [%4d s]: %s\n' "$SECONDS" "$*"; }

arch=$(uname -m)
. /etc/os-release
step "running on $arch, $PRETTY_NAME, $(python3 -V)"
[ "$arch" = aarch64 ] || { echo "expected aarch64, got $arch" >&2; exit 1; }

# Debian's own pip (23.0), as a Pi owner's `python3 -m venv` gets it, installed from the same
# wheel ensurepip uses but without byte-compiling it (that alone takes minutes emulated).
step "fresh venv in $VENV"
rm -rf "$VENV"
python3 -m venv --without-pip "$VENV"
PY=$VENV/bin/python
pip_wheel=$(ls /usr/share/python-wheels/pip-*.whl)
"$PY" "$pip_wheel/pip" install -q --no-compile --no-index "$pip_wheel"

step "wheel from the checkout"
rm -rf /work/dist
"$PY" -m pip wheel -q --no-deps --only-binary :all: -w /work/dist "$SRC"
wheel=$(ls /work/dist/edge_agent-*.whl)

# --no-compile: byte-compiling every installed module is minutes of emulated work; Python
# compiles what it imports on first use instead. The pip cache lives in the cached rootfs.
step "pip install ${wheel##*/}[tflite,onnx,camera,monitor] (wheels only)"
"$PY" -m pip install -q --no-compile --only-binary :all: "$wheel[tflite,onnx,camera,monitor]" \
    pytest pytest-timeout
"$PY" -m pip list --format=freeze \
    | grep -iE '^(ai-edge-litert|onnxruntime|opencv-python-headless|numpy|pydantic.core|cryptography|ddsketch|psycopg.binary|tuf)=' \
    | tr '\n' ' '
echo
"$PY" -c 'import platform, psycopg, cv2; print("platform.machine() =", platform.machine(), "| libpq", psycopg.pq.version(), "| opencv", cv2.__version__)'

EA=$VENV/bin/edge-agent
M=$SRC/models
# Without /proc/device-tree (the host's /proc has none) detection says "generic"; a Pi 5 detects
# rpi5, so doctor also shows that class's delegates and sensors.
step "edge-agent doctor"
"$EA" doctor
step "edge-agent doctor --device rpi5"
"$EA" doctor --device rpi5
step "edge-agent infer (LiteRT int8, ONNX Runtime int8)"
"$EA" infer "$M/digits/digits_int8.tflite" --input "$M/digits/samples/digit_3_3.png" --top-k 3
"$EA" infer "$M/digits/digits_int8.onnx" --input "$M/digits/samples/digit_7_1.png" --top-k 3
step "edge-agent bench (few runs: emulated SIMD is slow)"
"$EA" bench "$M/digits/digits_int8.tflite" --runs 20 --warmup 2
"$EA" bench "$M/digits/digits_fp32.onnx" --runs 20 --warmup 2

# The tests run against the installed wheel: the check directory has no edge_agent/ to shadow it.
step "device tests: $(echo $TESTS)"
rm -rf "$CHECK"
mkdir -p "$CHECK"
cp -a "$SRC/tests" "$SRC/models" "$SRC/device_configs" "$SRC/pyproject.toml" "$CHECK/"
cd "$CHECK"
"$PY" -c 'import edge_agent, sys; assert "/work/check" not in edge_agent.__file__; print("edge_agent from", edge_agent.__file__)'
set +e
# shellcheck disable=SC2086
# EDGE_AGENT_TEST_SLOWDOWN (set by run.sh) stretches the tests' waits for the emulator
# (tests/fixtures/wait.py); --timeout likewise for pytest-timeout's per-test limit.
"$PY" -m pytest -p no:cacheprovider -q --durations=8 --timeout=1200 --junitxml=/work/junit.xml $TESTS
rc=$?
set -e
[ "$rc" = 0 ] || exit "$rc"
# CI=true (run.sh) makes any undeclared skip a failure (tests/fixtures/ci_skips.py).
counts=$("$PY" -c 'import xml.etree.ElementTree as ET
print(sum(int(s.get("tests")) for s in ET.parse("/work/junit.xml").getroot().iter("testsuite")))')
echo "$arch ($PRETTY_NAME, $(python3 -V)): install, doctor, infer, bench and $counts device tests ok" >/work/summary
step "done"
