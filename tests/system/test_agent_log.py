# SPDX-License-Identifier: Apache-2.0
"""musterd's log lines (lib/log.c): an ISO 8601 UTC time after the "<N>"
prefix when stderr is not the journal, none when JOURNAL_STREAM names
stderr (journald stamps lines itself; systemd.exec(5))."""
import os
import re

from muster_fixtures import assert_no_sanitizer_reports

STAMPED = re.compile(r"^<\d>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z musterd: ", re.M)
PLAIN = re.compile(r"^<\d>musterd: ", re.M)


def since_last_start(log):
    return log[log.rindex("---- start"):]


def test_timestamps_outside_journald_only(agents):
    a = agents("h1", wake_port=0)
    a.start()
    a.stop()
    first = since_last_start(a.log())
    assert STAMPED.search(first), first[-2000:]
    # No line of either process (the network process inherits stderr and
    # the environment) goes without.
    assert not PLAIN.search(first), first[-2000:]

    st = os.stat(a.log_path)
    a.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    a.start()
    a.stop()
    second = since_last_start(a.log())
    assert PLAIN.search(second), second[-2000:]
    assert not STAMPED.search(second), second[-2000:]
    assert_no_sanitizer_reports()
