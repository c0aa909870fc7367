# SPDX-License-Identifier: Apache-2.0
"""docs/operations.md "Production configuration": the broker block, run as
written (issue 19.2), starts a Mosquitto that takes a host's certificate.

Only what cannot run here is adapted, and each adaptation is below:
apt-get and systemctl are left out (Mosquitto is installed by
scripts/setup; the test starts it itself), /etc/mosquitto is a folder of
the test laid out as Debian's package lays it out, and the listener moves
from 8883 to a free port.  Run as root, Mosquitto drops to the user
mosquitto before reading its files, as it does in production."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import SOURCE_DIR, need

OPERATIONS = SOURCE_DIR / "docs" / "operations.md"


def broker_block() -> list[str]:
    text = OPERATIONS.read_text()
    at = text.index("### Production configuration")
    m = re.search(r"^```[^\n]*\n(.*?)^```", text[at:], re.S | re.M)
    assert m, "no code block under 'Production configuration'"
    return [l for l in m.group(1).splitlines() if l.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def etc(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: Mosquitto's drop to the user mosquitto and the "
                    "block's install -g mosquitto (CI runs as root)")
    need("mosquitto", "mosquitto_pub", "openssl")
    # Outside any git work tree, readable on the way down as /etc is.
    top = Path(tempfile.mkdtemp(prefix="muster-broker-block-"))
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def test_docs_broker_block_starts_mosquitto(etc):
    work = etc / "admin"
    work.mkdir()
    subprocess.run([str(SOURCE_DIR / "scripts" / "gen-pki"), str(work / "PKI"),
                    "--host", "web1:web", "--operator", "alice"],
                   check=True, capture_output=True)
    shutil.copytree(SOURCE_DIR / "broker-config", work / "broker-config")
    root = etc / "etc" / "mosquitto"
    (root / "conf.d").mkdir(parents=True)	# as Debian's package has it
    for line in broker_block():
        if line.startswith(("apt-get ", "systemctl ")):
            continue
        line = line.replace("/etc/mosquitto", str(root))
        subprocess.run(["bash", "-euc", line], cwd=work, check=True)
    # The drop-in names /etc/mosquitto/muster: here, the test's copy.
    dropin = root / "conf.d" / "muster.conf"
    port = free_port()
    text = dropin.read_text().replace("/etc/mosquitto", str(root))
    text = re.sub(r"^listener 8883$", f"listener {port} 127.0.0.1", text, flags=re.M)
    dropin.write_text(text)
    persist = etc / "var"
    persist.mkdir(mode=0o755)
    shutil.chown(persist, "mosquitto", "mosquitto")
    # What Debian's /etc/mosquitto/mosquitto.conf sets.
    main = root / "mosquitto.conf"
    main.write_text(f"persistence_location {persist}/\nlog_dest stderr\n"
                    f"include_dir {root}/conf.d\n")
    log = etc / "mosquitto.log"
    with open(log, "wb") as out:
        broker = subprocess.Popen(["mosquitto", "-c", str(main)], stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        pki = work / "PKI"
        for _ in range(50):
            if broker.poll() is not None:
                break
            p = subprocess.run(
                ["mosquitto_pub", "-h", "localhost", "-p", str(port),
                 "--cafile", str(pki / "ca.crt"), "--cert", str(pki / "hosts" / "web1.crt"),
                 "--key", str(pki / "hosts" / "web1.key"), "-q", "1",
                 "-t", "muster/v1/hosts/web1/status", "-m", "x"],
                capture_output=True, text=True, timeout=10)
            if p.returncode == 0:
                break
            time.sleep(0.2)
        assert broker.poll() is None, log.read_text()
        assert p.returncode == 0, (p.stderr, log.read_text())
        assert "Permission denied" not in log.read_text()
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=10)
