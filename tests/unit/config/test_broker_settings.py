"""BrokerSettings: the one way every component reaches the broker refuses what would leak or
mislead (a password in the URL, TLS files on a plain connection) with a message that says what
to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.config import BrokerSettings


def test_refuses_a_password_in_the_url_and_points_at_the_password_file():
    with pytest.raises(ValidationError) as caught:
        BrokerSettings(url="mqtts://cam-07:s3cret@broker:8883")
    message = str(caught.value)
    assert "password_file" in message and "--broker-password-file" in message
    assert "s3cret" not in message.split("input_value")[0]


def test_refuses_tls_files_on_a_plain_mqtt_url(tmp_path: Path):
    with pytest.raises(ValidationError, match="use mqtts://"):
        BrokerSettings(url="mqtt://broker:1883", ca_file=tmp_path / "ca.crt")


def test_a_client_certificate_needs_its_key_and_a_password_needs_a_user(tmp_path: Path):
    with pytest.raises(ValidationError, match="cert_file and key_file"):
        BrokerSettings(url="mqtts://broker", cert_file=tmp_path / "c.crt")
    with pytest.raises(ValidationError, match="without a username"):
        BrokerSettings(url="mqtts://broker", password_file=tmp_path / "pw")


def test_tls_is_on_exactly_for_mqtts_and_the_password_is_the_files_first_line(tmp_path: Path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = BrokerSettings(url="mqtts://broker:8883", username="cam-07", password_file=secret)
    assert settings.tls and settings.read_password() == "s3cret"
    assert not BrokerSettings(url="mqtt://broker").tls
    assert BrokerSettings(url="mqtt://broker").read_password() is None
