# make demo  - the whole system on this machine, until Ctrl-C (no services needed)
# make test  - the whole test suite, as CI runs it (.ci/run)
# make test-arm64 - the device install and device tests on Debian bookworm arm64 (qemu, as root)
# make test-py310 - the unit tests on Python 3.10, the oldest Python edge-agent supports
# Both create .venv and install what they need; the Mosquitto broker is installed with apt when
# missing and you are root (otherwise the target says what to install).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The operator's conversion tools (TensorFlow, onnx2tf) live in a venv of their own, so the
# device venv above proves the device install works without them.
CVENV  := .venv-convert
CBIN   := $(CVENV)/bin
CSTAMP := $(CVENV)/.installed
CONVERT_TESTS := tests/unit/convert tests/integration/test_convert_onnx.py tests/integration/test_convert_tflite.py tests/integration/test_convert_zoo.py
# Tests that need TensorFlow run only there: the device run leaves them out rather than skipping
# them, because in CI a skip is a failure (tests/fixtures/ci_skips.py).
CONVERT_ONLY_TESTS := tests/integration/test_convert_tflite.py tests/integration/test_convert_zoo.py
# requires-python says 3.10+: the unit tests (not the converter's) also run on a 3.10 venv.
# PY310 is the first of these that runs and is 3.10: python3.10 from PATH, pyenv's newest 3.10
# (a pyenv shim on PATH may exist and still not run, so each one is tried).
PY310  ?= $(shell for c in python3.10 $$(ls -d $$HOME/.pyenv/versions/3.10.*/bin/python 2>/dev/null | sort -rV); do \
	$$c -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && command -v $$c && break; done)
V310   := .venv-py310
V310_STAMP := $(V310)/.installed

.PHONY: all venv venv-convert venv-py310 broker demo tour test test-device test-convert test-arm64 test-py310 lint typecheck bench docs clean

all: test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "edge-agent needs Python 3.10+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(CSTAMP): pyproject.toml
	$(PYTHON) -m venv $(CVENV)
	$(CBIN)/python -m pip install -q --upgrade pip
	$(CBIN)/python -m pip install -q -e '.[convert]' pytest pytest-timeout
	# test data only: scikit-image's bundled photographs calibrate the zoo (tests/fixtures/zoo.py)
	$(CBIN)/python -m pip install -q scikit-image
	$(CBIN)/python -m pip install -q --no-deps onnx2tf==1.29.24 tf-keras==2.21.0
	touch $(CSTAMP)

venv-convert: $(CSTAMP)

$(V310_STAMP): pyproject.toml
	@test -n "$(PY310)" || { echo "test-py310 needs Python 3.10: apt-get install python3.10, or pyenv install 3.10, or make PY310=/path/to/python3.10" >&2; exit 1; }
	@$(PY310) -c 'import sys; assert sys.version_info[:2] == (3, 10), f"PY310={sys.executable} is {sys.version.split()[0]}, not 3.10"'
	$(PY310) -m venv $(V310)
	$(V310)/bin/python -m pip install -q --upgrade pip
	$(V310)/bin/python -m pip install -q -e '.[dev]'
	touch $(V310_STAMP)

venv-py310: $(V310_STAMP)

# The local RTSP server of the camera tests and benchmarks/video.py (tests/fixtures/camera.py):
# GStreamer's, run by the system Python through PyGObject.
RTSP_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good
export RTSP_CHECK := import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0"); from gi.repository import Gst, GstRtspServer; Gst.init(None); assert Gst.ElementFactory.find("qtdemux") and Gst.ElementFactory.find("rtph264pay")

broker:
	@missing=""; \
	{ command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } || missing="$$missing mosquitto"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v faketime >/dev/null 2>&1 || missing="$$missing faketime"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v fusermount3 >/dev/null 2>&1 || missing="$$missing fuse3"; \
	/usr/bin/python3 -c "$$RTSP_CHECK" >/dev/null 2>&1 || missing="$$missing $(RTSP_PACKAGES)"; \
	{ command -v tc >/dev/null 2>&1 && command -v ip >/dev/null 2>&1; } || missing="$$missing iproute2"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		systemctl disable --now mosquitto postgresql prometheus >/dev/null 2>&1 || true; \
	else \
		echo "The tests need:$$missing. Install them: sudo apt-get install$$missing" >&2; exit 1; \
	fi

demo: venv
	$(BIN)/edge-agent demo

tour: venv
	@echo "== what this device can run"
	$(BIN)/edge-agent doctor
	@echo "== a digit through LiteRT (int8) and ONNX Runtime (int8)"
	$(BIN)/edge-agent infer models/digits/digits_int8.tflite --input models/digits/samples/digit_3_3.png --top-k 3
	$(BIN)/edge-agent infer models/digits/digits_int8.onnx --input models/digits/samples/digit_7_1.png --top-k 3
	@echo "== benchmark"
	$(BIN)/edge-agent bench models/digits32/digits32_int8.tflite --runs 200
	$(BIN)/edge-agent bench models/digits32/digits32_fp32.onnx --runs 200

test: test-device test-convert

test-device: venv broker
	$(BIN)/python -m pytest $(addprefix --ignore=,$(CONVERT_ONLY_TESTS))

test-convert: venv-convert
	$(CBIN)/python -m pytest -p no:cacheprovider $(CONVERT_TESTS)

# Debian bookworm arm64 under qemu-user-static: see tools/arm64/run.sh. Needs root.
test-arm64:
	tools/arm64/run.sh

test-py310: venv-py310 broker
	$(V310)/bin/python -m pytest -p no:cacheprovider tests/unit --ignore=tests/unit/convert

lint: venv
	$(BIN)/ruff check edge_agent tests benchmarks models
	$(BIN)/ruff format --check edge_agent tests benchmarks models
	$(BIN)/mypy
	$(BIN)/lint-imports

typecheck: lint

bench: venv
	$(BIN)/python -m benchmarks.runtime_overhead
	$(BIN)/python -m benchmarks.isolation
	$(BIN)/python -m benchmarks.api
	$(BIN)/python -m benchmarks.telemetry
	$(BIN)/python -m benchmarks.footprint
	$(BIN)/python -m benchmarks.video
	$(BIN)/python -m benchmarks.delta

docs: venv
	$(BIN)/edge-agent config reference > docs/config-reference.md

clean:
	rm -rf $(VENV) $(CVENV) $(V310) .pytest_cache .mypy_cache .ruff_cache
