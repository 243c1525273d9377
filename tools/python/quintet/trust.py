"""The trust store: a directory of <role>-<replica>.pub files, each the
32-byte Ed25519 public key as 64 hex characters (README "Wire format" 4).
"""
import os
import re

import nacl.encoding
import nacl.hash
import nacl.signing

from .build import DeploymentError

_PUB_FILE = re.compile(r"^([a-z]+)-([0-9]+)\.pub$")
PUBLIC_KEY_BYTES = 32


class TrustError(DeploymentError):
    """A trust-store file that holds no public key."""


def key_id_of(public_key):
    """First 8 bytes of unkeyed BLAKE2b-256 of the public key, as hex."""
    return nacl.hash.blake2b(public_key, digest_size=32,
                             encoder=nacl.encoding.RawEncoder)[:8].hex()


class TrustStore:
    """by_key_id: key id -> (role, replica, VerifyKey); by_identity:
    (role, replica) -> key id. Files of other names are not keys (skipped)."""

    def __init__(self, trust_dir):
        self.by_key_id = {}
        self.by_identity = {}
        for name in sorted(os.listdir(trust_dir)):
            m = _PUB_FILE.match(name)
            if not m:
                continue
            with open(os.path.join(trust_dir, name)) as f:
                text = f.read().strip()
            try:
                public = bytes.fromhex(text)
            except ValueError:
                public = b""
            if len(public) != PUBLIC_KEY_BYTES:
                raise TrustError("%s: not a 32-byte public key in hex" % os.path.join(trust_dir, name))
            kid = key_id_of(public)
            identity = (m.group(1), int(m.group(2)))
            self.by_key_id[kid] = identity + (nacl.signing.VerifyKey(public),)
            self.by_identity[identity] = kid

    def get(self, key_id):
        """(role, replica, VerifyKey) of a key id, None if not trusted."""
        return self.by_key_id.get(key_id)
