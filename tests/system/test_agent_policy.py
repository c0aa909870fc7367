# SPDX-License-Identifier: Apache-2.0
"""Issue 19 against the real musterd and broker: the shipped example policy
is accepted and means what it says, and the policy fails closed (design.md §8,
muster-policy(5) "RELOAD").

A start with a broken file is refused and a broken edit at reload keeps the
rules in force: test_agent_trust.py
(test_policy_syntax_error_fatal_at_start_kept_out_at_reload).  Here: a broken
file where no policy was in force refuses every job until it loads, and a
policy whose file disappears at reload stays in force until a restart.

"No policy in force" needs an agent started without a file, which only the
default path (/etc/muster/policy) allows; that path is shared by every agent
the tests start on this machine, so these tests never write it: the file
"appears" by a reload whose agent.conf names it ([trust] policy), the same
policy_reload() path as a file appearing at the default one."""
import os
import re
import signal
import time

import pytest

from muster_fixtures import (
    SOURCE_DIR, assert_no_sanitizer_reports, log_count, new_job, start_fresh,
)
from test_agent_intake import run_body
from test_agent_trust import ask, policy_agent

DEFAULT_POLICY = "/etc/muster/policy"


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


def hup(agent, text, timeout=10):
    """SIGHUP, then wait for one more log line containing text."""
    before = log_count(agent, text)
    agent.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while log_count(agent, text) <= before:
        assert agent.running, agent.log()[-3000:]
        assert time.monotonic() < deadline, agent.log()[-3000:]
        time.sleep(0.05)


def no_default_policy():
    if os.path.exists(DEFAULT_POLICY):
        pytest.skip(f"{DEFAULT_POLICY} exists on this machine: an agent cannot "
                    f"start without a policy here")


def test_shipped_example_policy(agents, op_client, operator, tmp_path):
    """packaging/policy.example (the packages' examples/policy) as a real
    host's policy: accepted by --check-config and at start (today's main:
    "policy:19: unknown kind '*'"), and each rule does what its comment
    says for alice."""
    text = (SOURCE_DIR / "packaging" / "policy.example").read_text()
    a = policy_agent(agents, tmp_path, text)
    pol = str(a.policy)
    deny_all = 1 + text.splitlines().index(
        next(line for line in text.splitlines() if line.startswith("deny")))
    out = a.check_config()
    assert out.returncode == 0, out.stdout
    start_fresh(a)
    # "Everyone may see whether the host is alive."
    assert ask(op_client, operator, new_job("ping", "all"))["status"] == "pass"
    assert ask(op_client, operator, new_job("version", "group/web"))["status"] == "pass"
    # alice runs os.* anywhere ...
    assert ask(op_client, operator, run_body("all"))["status"] == "pass"
    # ... but not update, which the last rule denies to everyone else.
    r = ask(op_client, operator, new_job("update", "all"))
    assert (r["status"], r["reason"]) == (
        "rejected", f"not allowed for operator alice: denied by {pol}:{deny_all}"), r


def test_broken_policy_with_none_in_force_refuses_every_job(
        agents, op_client, operator, tmp_path):
    """Started without a policy (everything allowed), then a policy that
    does not parse: every job is refused, the reason naming file:line, until
    a reload finds it fixed; then its rules apply.  (Today's main keeps "no
    policy" in force: the ping below would pass.)"""
    no_default_policy()
    a = policy_agent(agents, tmp_path, "")
    del a.conf["trust"]["policy"]
    a.write_conf()
    start_fresh(a)
    assert f"no policy at {DEFAULT_POLICY}" in a.log()
    assert ask(op_client, operator, new_job("version", "host/h1"))["status"] == "pass"

    pol = a.policy
    pol.write_text("allow alice ping host/h1\nallow alice pong all\n")
    a.conf["trust"]["policy"] = str(pol)
    a.write_conf()
    hup(a, "every job is refused until the policy loads")
    why = f"{pol}:2: unknown kind 'pong'"
    for body in (new_job("ping", "host/h1"), new_job("version", "all"), run_body()):
        r = ask(op_client, operator, body)
        assert r["status"] == "rejected", r
        assert r["reason"].startswith(
            "not allowed for operator alice: every job is refused until the "
            f"policy loads: {why}"), r
    assert "running module" not in a.log()

    # Still broken at the next reload: still refused.
    hup(a, "every job is refused until the policy loads")
    assert ask(op_client, operator, new_job("ping", "host/h1"))["status"] == "rejected"

    # Fixed: its rules, and only its rules, apply.
    pol.write_text("allow alice ping,run:* host/h1\n")
    hup(a, "reloaded policy")
    assert ask(op_client, operator, new_job("ping", "host/h1"))["status"] == "pass"
    assert ask(op_client, operator, run_body())["status"] == "pass"
    r = ask(op_client, operator, new_job("version", "host/h1"))
    assert (r["status"], r["reason"]) == (
        "rejected", f"not allowed for operator alice: no rule matched in {pol}"), r


def test_policy_gone_at_reload_stays_in_force(agents, op_client, operator, tmp_path):
    """A policy file that disappears does not turn the host back to
    "everything allowed" on a reload (today's main does, when agent.conf
    then names the default path): the rules in force stay, loudly, until
    a restart."""
    no_default_policy()
    a = policy_agent(agents, tmp_path, "allow alice ping host/h1\n")
    pol = a.policy
    start_fresh(a)
    denied = f"not allowed for operator alice: no rule matched in {pol}"
    assert ask(op_client, operator, new_job("version", "host/h1"))["reason"] == denied

    # The named file removed: an error, the rules stay.
    pol.unlink()
    hup(a, "keeping the policy in force")
    assert re.search(rf"<3>.*reload: policy {re.escape(str(pol))}: No such file",
                     a.log()), a.log()[-2000:]
    assert ask(op_client, operator, new_job("version", "host/h1"))["reason"] == denied
    assert ask(op_client, operator, new_job("ping", "host/h1"))["status"] == "pass"

    # agent.conf no longer names it and the default path has none: the
    # rules still stay, and the log says how to drop them.
    del a.conf["trust"]["policy"]
    a.write_conf()
    hup(a, "only a restart drops a policy")
    assert re.search(rf"<3>.*reload: no policy at {DEFAULT_POLICY}: keeping the 1 "
                     rf"rules of {re.escape(str(pol))} in force", a.log()), a.log()[-2000:]
    assert ask(op_client, operator, new_job("version", "host/h1"))["reason"] == denied

    # A restart without a file: no policy (design.md §8), as the log said.
    start_fresh(a)
    assert ask(op_client, operator, new_job("version", "host/h1"))["status"] == "pass"
