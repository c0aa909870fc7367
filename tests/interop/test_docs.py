# SPDX-License-Identifier: Apache-2.0
"""docs/protocol.md's worked example must stay true: the hex it shows is a
valid signed job under the example key it shows, and says what the text
says it does."""
import pathlib
import re
import subprocess

import msgpack
from cryptography.hazmat.primitives.serialization import (
    Encoding, PublicFormat, load_pem_private_key)

DOC = pathlib.Path(__file__).parents[2] / "docs" / "protocol.md"


def _example():
    text = DOC.read_text()
    key = re.search(r"-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----\n",
                    text, re.S).group(0)
    block = text.split("230-byte envelope")[1].split("```")[1]
    data = bytearray()
    for line in block.splitlines():
        for tok in line.split():
            if not re.fullmatch(r"[0-9a-f]{2}", tok):
                break
            data.append(int(tok, 16))
    return key.encode(), bytes(data)


def test_example_verifies(proto, tmp_path):
    key_pem, env = _example()
    assert len(env) == 230
    key = load_pem_private_key(key_pem, None)
    (tmp_path / "ex.pub").write_bytes(key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "env.bin").write_bytes(env)
    out = subprocess.run([proto.path, "verify-job", str(tmp_path), str(tmp_path / "env.bin")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    outer = msgpack.unpackb(env)
    assert outer["key"] == "0c4f2fa410476cf2"
    body = msgpack.unpackb(outer["body"])
    assert body == {"v": 1, "id": "qc-0001", "kind": "run", "target": "host/web1",
                    "issued_at": 1795770000000, "not_after": 1795770600000,
                    "operator": "alice", "module": "os.release", "args": {"id": "debian"}}
    # Deterministic Ed25519: signing the body again gives the same bytes.
    assert key.sign(outer["body"]) == outer["sig"]
