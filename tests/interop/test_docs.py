# SPDX-License-Identifier: Apache-2.0
"""docs/protocol.md's worked example must stay true: the hex it shows is a
valid signed job under the example key it shows, of the length the text
gives, and says what the text says it does."""
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
    m = re.search(r"(\d+)-byte envelope.*?```\n(.*?)```", text, re.S)
    size, block = int(m.group(1)), m.group(2)
    data = bytearray()
    for line in block.splitlines():
        for tok in line.split():
            if not re.fullmatch(r"[0-9a-f]{2}", tok):
                break
            data.append(int(tok, 16))
    assert len(data) == size, (len(data), size)
    return key.encode(), bytes(data)


def test_example_verifies(proto, tmp_path):
    key_pem, env = _example()
    assert len(env) == 244
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
    # With the aud an agent of the default fleet wants (design.md §3); that an
    # agent accepts it is system/test_docs_example.py's to show.
    assert body == {"v": 1, "id": "qc-0001", "kind": "run", "target": "host/web1",
                    "issued_at": 1795770000000, "not_after": 1795770600000,
                    "operator": "alice", "aud": "muster/v1", "module": "os.release",
                    "args": {"id": "debian"}}
    # Deterministic Ed25519: signing the body again gives the same bytes.
    assert key.sign(outer["body"]) == outer["sig"]
