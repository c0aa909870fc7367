# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the protocol v1 interop tests.

The C side is tests/tools/muster-proto: $MUSTER_PROTO if set, else
$MUSTER_BUILD_DIR/tests/tools/muster-proto (ctest sets MUSTER_BUILD_DIR),
else build/tests/tools/muster-proto under the source tree.
"""
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from wirekit import Operator, Proto  # noqa: E402


def _tool_path():
    if os.environ.get("MUSTER_PROTO"):
        return pathlib.Path(os.environ["MUSTER_PROTO"])
    source = pathlib.Path(os.environ.get("MUSTER_SOURCE_DIR",
                                         pathlib.Path(__file__).parents[2]))
    build = pathlib.Path(os.environ.get("MUSTER_BUILD_DIR", source / "build"))
    return build / "tests" / "tools" / "muster-proto"


@pytest.fixture(scope="session")
def proto():
    path = _tool_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"muster-proto not found at {path}: build it, or set MUSTER_PROTO")
    return Proto(str(path))


@pytest.fixture
def operator():
    """A trusted operator; its public key is in keydir."""
    return Operator("alice")


@pytest.fixture
def stranger():
    """A well-formed operator key that keydir does not hold."""
    return Operator("mallory")


@pytest.fixture
def keydir(tmp_path, operator):
    folder = tmp_path / "operators"
    folder.mkdir()
    operator.write_pub(folder)
    return folder


@pytest.fixture
def keyfile(tmp_path, operator):
    folder = tmp_path / "private"
    folder.mkdir()
    return operator.write_priv(folder)


@pytest.fixture
def verify(proto, keydir, operator):
    """verify(body_bytes, **envelope_overrides): sign body as the trusted
    operator and run it through the C verify-job path."""
    def run(body, **over):
        return proto.verify_job(keydir, operator.envelope(body, **over))
    return run
