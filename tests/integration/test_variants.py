"""Variants by hardware: one signed release, a variant per device class, each device gets its own
and none gets another's. Real repository, registry, broker and TUF client; the device configs
are the shipped ones."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_agent.config import resolve_device_config
from edge_agent.convert.package import PackageRequest, build_package
from edge_agent.delivery.layout import StoreLayout
from edge_agent.delivery.store import ModelStore
from edge_agent.errors import UpdateError
from edge_agent.trust.device.client import DeviceUpdater
from edge_agent.trust.device.variants import Platform, platform_of
from edge_agent.trust.operator.publish import add_release
from tests.fakes.delivery_env import EDGE_AGENT, delivery_env

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


def variant(
    tmp: Path, source: Path, filename: str, devices: tuple[str, ...], delegates: tuple[str, ...]
) -> Path:
    model = tmp / "models" / filename
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, model)
    output = tmp / "packages" / filename
    build_package(
        PackageRequest(
            model=model,
            name="digits",
            version="2.0.0",
            output=output,
            target_devices=devices,
            target_delegates=delegates,
            force=True,
        )
    )
    return output


EXPECTED = {
    "rpi4": "digits_int8.tflite",
    "rpi5": "digits_int8.tflite",
    "rpi5-coral": "digits_int8_edgetpu.tflite",
    "x86-generic": "digits_fp32.onnx",
    "jetson-orin-nano": "digits_trt.onnx",
}


def test_each_device_class_gets_its_own_variant_and_none_gets_another_s(tmp_path, mosquitto):
    packages = [
        variant(
            tmp_path, DIGITS / "digits_int8.tflite", "digits_int8.tflite", ("rpi4", "rpi5"), ()
        ),
        variant(
            tmp_path,
            DIGITS / "digits_int8.tflite",
            "digits_int8_edgetpu.tflite",
            ("rpi5-coral",),
            ("edgetpu",),
        ),
        variant(tmp_path, DIGITS / "digits_fp32.onnx", "digits_fp32.onnx", ("x86-generic",), ()),
        variant(
            tmp_path,
            DIGITS / "digits_fp32.onnx",
            "digits_trt.onnx",
            ("jetson-orin-nano",),
            ("tensorrt",),
        ),
    ]
    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        published = add_release(env.repo, packages)
        assert {v.release for v in published} == {1}
        device = env.device("dev-variants")
        chosen: dict[str, str] = {}
        for device_class in [*EXPECTED, "jetson-nano"]:
            config, _ = resolve_device_config(device_class)
            updater = DeviceUpdater(
                device.metadata_dir,
                device.client,
                device.device_id,
                device.download_dir,
                device.settings,
                platform=platform_of(config),
            )
            with updater:
                updater.refresh()
                try:
                    chosen[device_class] = updater.latest("digits").filename
                except UpdateError as exc:
                    chosen[device_class] = f"refused: {exc}"
        for device_class, filename in EXPECTED.items():
            assert chosen[device_class] == filename, chosen
        # made for the Orin's TensorRT, not for the older Nano: exact targeting, no fallback
        assert chosen["jetson-nano"].startswith("refused: no variant of digits release 1 fits")
        assert "digits_trt.onnx: made for jetson-orin-nano" in chosen["jetson-nano"]

        # the user's path: `models pull --device` installs the variant and says which
        store_dir = tmp_path / "coral-store"
        pulled = subprocess.run(
            [
                str(EDGE_AGENT),
                "models",
                "pull",
                "--broker",
                env.broker_url,
                "--root",
                str(env.root_json),
                "--store-dir",
                str(store_dir),
                "--device-id",
                "coral-1",
                "--device",
                "rpi5-coral",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pulled.returncode == 0, pulled.stderr
        assert json.loads(pulled.stdout)[0]["state"] == "active"
        with ModelStore(StoreLayout(store_dir).models, readonly=True) as store:
            active = store.active("digits")
            assert active is not None
            assert active.manifest["model"]["path"] == "digits_int8_edgetpu.tflite"
            assert active.manifest["target_delegates"] == ["edgetpu"]
        assert list(StoreLayout(store_dir).trust_downloads.iterdir()) == []  # the store has it


def test_a_release_of_several_variants_needs_a_platform_to_choose(tmp_path, mosquitto):
    packages = [
        variant(tmp_path, DIGITS / "digits_int8.tflite", "a.tflite", (), ()),
        variant(tmp_path, DIGITS / "digits_fp32.onnx", "b.onnx", (), ()),
    ]
    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        add_release(env.repo, packages)
        device = env.device("dev-none")
        with device.updater() as updater:
            updater.refresh()
            with pytest.raises(UpdateError, match="has 2 variants"):
                updater.latest("digits")


def test_variants_must_share_name_and_version_and_have_distinct_files(tmp_path, mosquitto):
    one = variant(tmp_path, DIGITS / "digits_int8.tflite", "same.tflite", (), ())
    other = tmp_path / "other"
    build_package(
        PackageRequest(
            model=DIGITS / "digits_fp32.onnx",
            name="digits",
            version="2.0.1",
            output=other,
            force=True,
        )
    )
    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        with pytest.raises(UpdateError, match="share name and version"):
            add_release(env.repo, [one, other])
        with pytest.raises(UpdateError, match="give each variant's model file its own name"):
            add_release(env.repo, [one, one])


def test_generic_variants_rank_below_ones_made_for_the_class():
    from edge_agent.trust.device.variants import choose_variant
    from edge_agent.trust.targets import ModelRelease

    def release(filename: str, fmt: str, devices=(), delegates=()) -> ModelRelease:
        manifest = {
            "format": fmt,
            "target_devices": list(devices),
            "target_delegates": list(delegates),
        }
        return ModelRelease("m", 1, f"models/m/1/{filename}", 1, "0" * 64, manifest)

    pi = Platform("rpi5", ("xnnpack", "cpu"), frozenset({"tflite", "onnx"}))
    generic = release("generic.onnx", "onnx")
    mine = release("pi.tflite", "tflite", ("rpi5",))
    assert choose_variant([generic, mine], pi) is mine
    assert choose_variant([generic], pi) is generic
    no_onnx = Platform("rpi5", ("xnnpack",), frozenset({"tflite"}))
    with pytest.raises(UpdateError, match="no onnx runtime installed"):
        choose_variant([generic], no_onnx)
