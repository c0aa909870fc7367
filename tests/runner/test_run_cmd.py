# SPDX-License-Identifier: Apache-2.0
"""api->run_cmd(): no shell, clean environment, bounded, killed on time."""
import os
import signal
import time

import pytest

from conftest import procs_with_cmdline, run_contract, wait_until


def cmd(argv, **args):
    r = run_contract("probe", args={"cmd": argv, **args})
    assert r.rc == 0, r
    return r.verdict["data"]["cmd"]


def test_path_search_and_output():
    d = cmd(["echo", "hello", "world"])
    assert d == {"rc": 0, "errno": 0, "exited": True, "status": 0, "timed_out": False,
                 "out_len": 12, "truncated": False, "nul": True, "out": "hello world\n"}


def test_exit_status():
    d = cmd(["/bin/sh", "-c", "exit 7"])
    assert d["exited"] is True and d["status"] == 7


def test_killed_by_signal():
    d = cmd(["sh", "-c", "kill -TERM $$"])
    assert d["exited"] is False and d["status"] == signal.SIGTERM


def test_not_found():
    d = cmd(["no-such-command-anywhere"])
    assert d == {"rc": -1, "errno": 2}


def test_missing_path_is_enoent(tmp_path):
    d = cmd([str(tmp_path / "no-such-file")])
    assert d == {"rc": -1, "errno": 2}


def test_not_executable(tmp_path):
    p = tmp_path / "script"
    p.write_text("#!/bin/sh\necho hi\n")
    d = cmd([str(p)])
    assert d == {"rc": -1, "errno": 13}


def test_empty_argv():
    d = cmd([])
    assert d == {"rc": -1, "errno": 22}


def test_clean_environment():
    d = cmd(["env"])
    assert d["out"] == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                        "LANG=C\n")


def test_stdin_is_dev_null():
    t = time.monotonic()
    d = cmd(["cat"])
    assert d["exited"] is True and d["status"] == 0 and d["out"] == ""
    assert time.monotonic() - t < 5


def test_stderr_is_merged():
    d = cmd(["sh", "-c", "echo out; echo err >&2"])
    assert d["out"] == "out\nerr\n"


def test_no_fds_leak_into_the_command():
    d = cmd(["ls", "/proc/self/fd"])
    # 0-2, and 3 is ls's own handle on the directory.
    assert d["out"].split() == ["0", "1", "2", "3"]


def test_signals_are_reset():
    d = cmd(["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"])
    assert d["out"] == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"


def test_own_process_group():
    d = cmd(["sh", "-c", "ps -o pgid= -p $$; echo $$"])
    pgid, pid = d["out"].split()
    assert pgid == pid


def test_timeout_kills_the_group():
    t = time.monotonic()
    d = cmd(["sh", "-c", "sleep 61.5 & sleep 61.5"], cmd_timeout_ms=300)
    assert d["timed_out"] is True and d["exited"] is False and d["status"] == signal.SIGKILL
    assert time.monotonic() - t < 10
    assert wait_until(lambda: procs_with_cmdline("sleep", "61.5") == [])


def test_background_leftover_does_not_block():
    t = time.monotonic()
    d = cmd(["sh", "-c", "sleep 62.5 & echo started"], cmd_timeout_ms=30000)
    assert d["out"] == "started\n" and d["exited"] is True and d["status"] == 0
    assert d["timed_out"] is False
    assert time.monotonic() - t < 10
    assert wait_until(lambda: procs_with_cmdline("sleep", "62.5") == [])


@pytest.mark.parametrize("timeout_ms", [0, -1])
def test_no_timeout(timeout_ms):
    d = cmd(["sh", "-c", "sleep 0.3; echo done"], cmd_timeout_ms=timeout_ms)
    assert d["timed_out"] is False and d["exited"] is True and d["out"] == "done\n"


def test_huge_max_out_is_capped():
    d = cmd(["echo", "hi"], cmd_max=1 << 62)
    assert d["out"] == "hi\n" and d["truncated"] is False


def test_output_is_bounded():
    d = cmd(["seq", "1", "100000"], cmd_max=1000)
    assert d["out_len"] == 1000 and d["truncated"] is True
    assert d["out"].startswith("1\n2\n3\n")
    assert d["exited"] is True and d["status"] == 0


def test_output_zero_max():
    d = cmd(["echo", "hi"], cmd_max=0)
    assert d["out_len"] == 0 and d["truncated"] is True and d["out"] == ""


def test_sigterm_to_the_runner_kills_the_command():
    """musterd's cancel: SIGTERM to the runner's group.  Here only the
    runner gets it; the command, in its own group, must go too."""
    import threading

    def term():
        assert wait_until(lambda: procs_with_cmdline("sleep", "63.5"), 10)
        for pid in procs_with_cmdline("sleep", "63.5"):
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            os.kill(ppid, signal.SIGTERM)

    th = threading.Thread(target=term)
    th.start()
    r = run_contract("probe", args={"cmd": ["sleep", "63.5"], "cmd_timeout_ms": 60000},
                     timeout=30)
    th.join()
    assert r.rc == -signal.SIGTERM
    assert wait_until(lambda: procs_with_cmdline("sleep", "63.5") == [])


def test_sigkill_to_the_runner_kills_the_command():
    """PR_SET_PDEATHSIG: the command dies with the runner."""
    import threading

    def kill():
        assert wait_until(lambda: procs_with_cmdline("sleep", "64.5"), 10)
        for pid in procs_with_cmdline("sleep", "64.5"):
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            os.kill(ppid, signal.SIGKILL)

    th = threading.Thread(target=kill)
    th.start()
    r = run_contract("probe", args={"cmd": ["sleep", "64.5"], "cmd_timeout_ms": 60000},
                     timeout=30)
    th.join()
    assert r.rc == -signal.SIGKILL
    assert wait_until(lambda: procs_with_cmdline("sleep", "64.5") == [])
