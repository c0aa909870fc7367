# SPDX-License-Identifier: Apache-2.0
"""The man pages and the example configuration cover what the code has:
every config key of lib/config.c's tables, every long option of the
programs, every muster subcommand.  Source-only: needs no build."""
import re

from conftest import SOURCE_DIR

MAN = SOURCE_DIR / "docs" / "man"


def table_keys(section_tables):
    """{section: [keys]} from lib/config.c: the sections table named, and
    the KEY*(\"name\", ...) entries of each key table it lists."""
    src = (SOURCE_DIR / "lib" / "config.c").read_text()
    m = re.search(rf"conf_section {section_tables}\[\] = \{{(.*?)\n\}};", src, re.S)
    assert m, f"no {section_tables} in lib/config.c"
    out = {}
    for sec, table in re.findall(r'\{ "(\w+)", (\w+),', m.group(1)):
        t = re.search(rf"conf_key {table}\[\] = \{{(.*?)\n\}};", src, re.S)
        assert t, table
        out[sec] = re.findall(r'KEY\w*\("(\w+)"', t.group(1))
    return out


def long_options(path):
    return set(re.findall(r'\{ "([a-z-]+)", (?:no|required)_argument',
                          path.read_text()))


def test_every_agent_key_in_agent_conf_5_and_the_example():
    keys = table_keys("agent_sections")
    assert len(keys) >= 6 and all(keys.values()), keys
    page = (MAN / "agent.conf.5.scd").read_text()
    example = (SOURCE_DIR / "agent" / "agent.conf.example").read_text()
    missing = []
    for sec, names in keys.items():
        body = page.split(f"# [{sec}]", 1)
        assert len(body) == 2, f"agent.conf(5) has no [{sec}] section"
        body = body[1].split("\n# ", 1)[0]
        ex = example.split(f"[{sec}]", 1)
        assert len(ex) == 2, f"agent.conf.example has no [{sec}]"
        ex = ex[1].split("\n[", 1)[0]
        for k in names:
            if f"*{k}* =" not in body and f", *{k}* =" not in body:
                missing.append(f"agent.conf(5) [{sec}] {k}")
            if not re.search(rf"^# {k} = ", ex, re.M):
                missing.append(f"agent.conf.example [{sec}] {k}")
    assert not missing, missing


def test_every_cli_key_in_muster_conf_5():
    keys = table_keys("ctl_sections")
    page = (MAN / "muster.conf.5.scd").read_text()
    missing = [f"[{s}] {k}" for s, names in keys.items() for k in names
               if f"*{k}* =" not in page.split(f"# [{s}]", 1)[-1].split("\n# ", 1)[0]]
    assert not missing, missing


def test_every_option_and_subcommand_in_the_pages():
    pages = {
        "musterd.8": [SOURCE_DIR / "agent" / "main.c"],
        "muster-runner.8": [SOURCE_DIR / "runner" / "main.c"],
        "muster.1": sorted((SOURCE_DIR / "ctl").glob("*.c")),
    }
    missing = []
    for page, sources in pages.items():
        text = (MAN / f"{page}.scd").read_text()
        for src in sources:
            for opt in long_options(src):
                if f"--{opt}" not in text:
                    missing.append(f"{page}: --{opt} ({src.name})")
    muster1 = (MAN / "muster.1.scd").read_text()
    usage = (SOURCE_DIR / "ctl" / "main.c").read_text()
    usage = usage.split('"commands:', 1)[1].split('"global options', 1)[0]
    commands = set(re.findall(r'"  ([a-z]+)[ ,]', usage))
    commands |= {f"module {c}" for c in re.findall(
        r"usage: muster module (\w+) ", (SOURCE_DIR / "ctl" / "module.c").read_text())}
    assert {"run", "hosts", "module publish", "module retire"} <= commands, commands
    for c in sorted(commands):
        if f"*{c}*" not in muster1 and f"\n*{c}* " not in muster1:
            missing.append(f"muster.1: command {c}")
    assert not missing, missing
