#!/usr/bin/env python3
"""DSSE interop between countersign and the Python reference implementation.

securesystemslib is the reference DSSE implementation in Python (used by in-toto and
python-tuf). This script is driven by tests/interop.rs:

  dsse_interop.py sign OUTDIR REPOSITORY COMMIT SUITE
      Generates an ed25519 key, signs a DSSE envelope holding an in-toto Statement v1 with a
      test-result v0.1 predicate, and writes OUTDIR/envelope.json and OUTDIR/public.json
      (securesystemslib's key dict: keytype, scheme, keyval.public as hex, plus keyid).

  dsse_interop.py verify ENVELOPE PUBLIC_HEX
      Verifies an envelope (written by countersign) with securesystemslib, threshold 1, and
      prints the verified key id and the statement's _type. securesystemslib only considers
      signatures whose keyid equals the key's default keyid, so this also checks that
      countersign's key id rule matches securesystemslib's.
"""

import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def sign(outdir: str, repository: str, commit: str, suite: str) -> None:
    signer = CryptoSigner.generate_ed25519()
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {
                "name": repository,
                "digest": {"gitCommit": commit},
                "annotations": {"countersign.dev/suite": suite},
            }
        ],
        "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
        "predicate": {
            "result": "PASSED",
            "configuration": [{"name": "pytest", "uri": "pkg:pypi/pytest"}],
            "passedTests": ["tests/test_shop.py::test_add"],
            "warnedTests": [],
            "failedTests": [],
        },
    }
    envelope = Envelope(
        payload=json.dumps(statement).encode("utf-8"),
        payload_type=PAYLOAD_TYPE,
        signatures={},
    )
    envelope.sign(signer)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "envelope.json").write_text(json.dumps(envelope.to_dict()))
    key = signer.public_key.to_dict()
    key["keyid"] = signer.public_key.keyid
    (out / "public.json").write_text(json.dumps(key))


def verify(envelope_path: str, public_hex: str) -> None:
    envelope = Envelope.from_dict(json.loads(Path(envelope_path).read_text()))
    key = SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)))
    accepted = envelope.verify([key], 1)
    statement = json.loads(envelope.payload)
    print(" ".join(accepted.keys()), statement["_type"])


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "sign":
        sign(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "verify":
        verify(*sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
