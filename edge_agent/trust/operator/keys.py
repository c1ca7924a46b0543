"""Signing keys of a TUF repository: ed25519 private keys in PEM files, one file per key.

Why files: the offline roles (root, targets) are meant to live on a removable medium or an
air-gapped machine; a directory of PEM files is the simplest thing an operator can move, back up
and mount only when signing. Private key files are created 0600 and never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey

from edge_agent._fs import create_atomically, replace_durably
from edge_agent.errors import UpdateError

KEY_SUFFIX = ".pem"


@dataclass(frozen=True)
class KeyFile:
    """A private key on disk and the signer made from it."""

    path: Path
    signer: CryptoSigner

    @property
    def keyid(self) -> str:
        """The TUF key id (hash of the public key)."""
        return str(self.signer.public_key.keyid)

    @property
    def public_key(self) -> SSlibKey:
        """The public half, as TUF metadata lists it."""
        key: SSlibKey = self.signer.public_key
        return key


def generate_key(keys_dir: Path, role: str) -> KeyFile:
    """Make a new ed25519 key for ``role`` and write it to ``keys_dir`` (0600, never replaced)."""
    signer = CryptoSigner.generate_ed25519()
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = keys_dir / f"{role}-{signer.public_key.keyid[:12]}{KEY_SUFFIX}"
    # complete or absent after a crash (a half key would make every later load fail)
    create_atomically(path, signer.private_bytes, mode=0o600)
    return KeyFile(path, signer)


def load_key(path: Path) -> KeyFile:
    """Read one PEM private key; UpdateError says which file is unusable and why."""
    try:
        private = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UpdateError(f"{path}: not a readable unencrypted PEM private key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise UpdateError(f"{path}: expected an ed25519 key, got {type(private).__name__}")
    return KeyFile(path, CryptoSigner(private))


def load_keys(keys_dir: Path) -> dict[str, KeyFile]:
    """Every key in ``keys_dir`` by key id (an absent directory holds no keys)."""
    if not keys_dir.is_dir():
        return {}
    found: dict[str, KeyFile] = {}
    for path in sorted(keys_dir.glob(f"*{KEY_SUFFIX}")):
        key = load_key(path)
        found[key.keyid] = key
    return found


def retire_key(key: KeyFile, keys_dir: Path) -> Path:
    """Move a replaced key to ``keys_dir/retired/`` (kept for audit, never used to sign)."""
    retired = keys_dir / "retired"
    retired.mkdir(exist_ok=True, mode=0o700)
    target = retired / key.path.name
    replace_durably(key.path, target)
    return target
