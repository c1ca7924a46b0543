"""The throwaway CA the demo and the tests make: a broker certificate that verifies against it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from edge_agent.fleet.tls import make_authority


def test_broker_certificate_is_signed_by_the_ca_for_its_hosts(tmp_path: Path) -> None:
    ca = make_authority(tmp_path / "ca", "ca")
    cert_path, key_path = ca.issue(tmp_path / "broker", "broker", ["localhost", "127.0.0.1"])
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    issuer = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    cert.verify_directly_issued_by(issuer)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert ca.key.stat().st_mode & 0o777 == 0o600
