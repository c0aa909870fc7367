# SPDX-License-Identifier: Apache-2.0
"""The agent's docs say what the agent does (issue 19, point 9): the state
layout agent.conf(5), musterd(8) and operations.md describe is the one a
running musterd makes; what they say SIGHUP applies is what reload() in
agent/main.c takes from the re-read file; and the sentences the issue
found stale (privilege separation "planned", musterd "one process" as
root, self-update "not built") stay gone."""
from __future__ import annotations

import re

from muster_fixtures import SOURCE_DIR, new_job, run_job

MAN = SOURCE_DIR / "docs" / "man"
DOCS = SOURCE_DIR / "docs"


def man_item(page: str, head: str) -> str:
    """The paragraph of a man page's item (a line starting with head, up to
    the next unindented line)."""
    text = (MAN / page).read_text()
    m = re.search(rf"^{re.escape(head)}.*\n((?:\t.*\n|\n(?=\t))+)", text, re.M)
    assert m, f"{page}: no item {head!r}"
    return m.group(0)


def ops_bullet(start: str) -> str:
    """The operations.md bullet that starts with start."""
    text = (DOCS / "operations.md").read_text()
    m = re.search(rf"^- {re.escape(start)}.*\n(?:  .*\n)*", text, re.M)
    assert m, f"operations.md: no bullet {start!r}"
    return m.group(0)


def ops_section(head: str) -> str:
    """An operations.md section, from its heading to the next one."""
    text = (DOCS / "operations.md").read_text()
    m = re.search(rf"^{re.escape(head)}\n(.*?)(?=^#)", text, re.M | re.S)
    assert m, f"operations.md: no section {head!r}"
    return m.group(0)


def test_state_layout_is_the_running_agents(agents, mqtt, operator):
    a = agents("h1", wake_port=0).start()
    r = run_job(mqtt("op:alice"), operator, new_job("ping", "host/h1"), ["h1"], 10)
    assert r["h1"]["status"] == "pass"
    a.stop()
    top = sorted(p.name for p in a.state_dir.iterdir())
    net = sorted(p.name for p in (a.state_dir / "net").iterdir())
    assert "seen" in top and "net" in top and "spool" in net, (top, net)
    docs = {
        "agent.conf(5) state_dir": man_item("agent.conf.5.scd", "*state_dir* ="),
        "musterd(8) FILES": man_item("musterd.8.scd", "_/var/lib/muster_"),
        "operations.md State on the host": ops_section("### State on the host"),
    }
    for where, text in docs.items():
        for name in top + [f"net/{n}" for n in net]:
            # "spool/", "*spool/*", "net/" or "_net/_": each entry named.
            base = name.split("/")[-1]
            assert re.search(rf"(?<![A-Za-z0-9.]){re.escape(base)}(?![A-Za-z0-9])", text), \
                f"{where} does not name {name}: {text}"
        assert "net/" in text, f"{where} does not say what net/ is"
    # What the agent no longer keeps is not described as if it did.
    for where in ("agent.conf(5) state_dir", "musterd(8) FILES"):
        assert "running/" not in docs[where], docs[where]


def reloaded_keys() -> set[str]:
    """The agent.conf keys a SIGHUP applies: the fields reload() and
    reload_policy() in agent/main.c take from the re-read configuration
    ("fresh"), by their key name (the field names are the keys')."""
    src = (SOURCE_DIR / "agent" / "main.c").read_text()
    bodies = re.findall(r"^(?:reload|reload_policy)\(.*?\n\}\n", src, re.M | re.S)
    assert len(bodies) == 2, "reload() and reload_policy() not found in agent/main.c"
    keys = set(re.findall(r"\bfresh(?:\.|->)(\w+)", "".join(bodies)))
    assert {"operators", "log_level"} <= keys, keys
    return keys


def test_what_sighup_applies_is_documented():
    keys = reloaded_keys()
    agent_conf = (MAN / "agent.conf.5.scd").read_text()
    m = re.search(r"^A reload .*?\n\n", agent_conf, re.M | re.S)
    assert m, "agent.conf(5): no paragraph on reload"
    docs = {
        "musterd(8) SIGHUP": man_item("musterd.8.scd", "*SIGHUP*"),
        "agent.conf(5)": m.group(0),
        "operations.md": ops_bullet("Reload with"),
    }
    for where, text in docs.items():
        missing = sorted(k for k in keys if not re.search(rf"\b{k}\b", text))
        assert not missing, f"{where} does not say that SIGHUP applies {missing}: {text}"


def test_stale_sentences_stay_gone():
    user = man_item("agent.conf.5.scd", "*user* =")
    assert "planned" not in user and "Today musterd is one process" not in user, user
    ops = (DOCS / "operations.md").read_text()
    assert "the agent runs as root today, one process" not in ops
    assert "will hand parts of it" not in ops
    sec = (DOCS / "security.md").read_text()
    assert "not built yet" not in sec and "is not\n  built" not in sec
