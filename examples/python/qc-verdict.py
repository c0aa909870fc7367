#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""qc-verdict - a support tool: run the install QC on one host, print a verdict page.

    qc-verdict.py HOST [--profile FILE] [--html] [--config FILE] [--wait SECONDS]

Runs the qc.install module with a QC profile (a JSON file such as
seeds/qc/base.json: {"name": ..., "checks": [...]}) on HOST through the
muster Python binding (python3-muster), and prints a page for the support
technician: the host's verdict, then each check with its status and what
it found.  Plain text by default, a standalone HTML page with --html.

The session comes from the operator's muster.conf ($MUSTER_CONFIG, else
~/.config/muster/muster.conf, or --config), as for the muster CLI; the
host's answer is only shown once its signature has been checked.

Exit status: 0 the QC passed, 1 it failed (or a check could not be made),
2 the host did not answer in time, 3 muster could not send the job
(configuration, key, broker: the message says which).
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any, Optional

import muster

EXIT_PASS, EXIT_FAIL, EXIT_NO_ANSWER, EXIT_MUSTER = 0, 1, 2, 3

# The profile next to this script in a source tree (examples/python/ ->
# seeds/qc/base.json); an installed copy is given --profile.
DEFAULT_PROFILE = Path(__file__).resolve().parents[2] / "seeds" / "qc" / "base.json"


def checks_of(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """qc.install reports each check under data "checks/<name>/...": a
    nested map {"checks": {name: {"status", "summary", "reason", ...}}}."""
    checks = data.get("checks")
    if not isinstance(checks, dict):
        return []
    return [(name, c) for name, c in checks.items() if isinstance(c, dict)]


# A check's own bookkeeping, not what it found on the host.
NOT_FACTS = ("status", "summary", "reason", "kind", "ok")


def facts_text(check: dict[str, Any], limit: int = 0) -> str:
    """What a check found, beyond its verdict: its plain values as
    "key=value" pairs (maps and lists, such as every interface, are left to
    the module's own summary); cut at limit characters if limit."""
    pairs = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
             for k, v in sorted(check.items())
             if k not in NOT_FACTS and isinstance(v, (str, int, float, bool))]
    text = ", ".join(pairs)
    if limit and len(text) > limit:
        text = text[:limit - 3] + "..."
    return text


def text_page(host: str, r: Optional[muster.Result], missing: list[str]) -> str:
    lines = [f"QC verdict for {host}", "=" * (16 + len(host)), ""]
    if r is None:
        lines.append(f"NO ANSWER: {', '.join(missing) or host} did not answer in time.")
        return "\n".join(lines) + "\n"
    lines.append(f"verdict:  {r.status.upper()}")
    lines.append(f"summary:  {r.summary}")
    if r.reason:
        lines.append(f"reason:   {r.reason}")
    when = r.finished_at.strftime("%Y-%m-%d %H:%M:%S UTC") if r.finished_at else "?"
    lines.append(f"checked:  {when} by muster agent {r.agent_version} (job {r.job})")
    lines.append("")
    checks = checks_of(r.data)
    width = max([len(n) for n, _ in checks] + [5])
    lines.append(f"{'CHECK':<{width}}  {'STATUS':<6}  DETAIL")
    for name, c in checks:
        detail = str(c.get("summary") or c.get("reason") or "")
        lines.append(f"{name:<{width}}  {str(c.get('status', '?')):<6}  {detail}")
        found = facts_text(c, limit=100)
        if found:
            lines.append(f"{'':<{width}}  {'':<6}  ({found})")
    return "\n".join(lines) + "\n"


def html_page(host: str, r: Optional[muster.Result], missing: list[str]) -> str:
    # Host text is passed on as the agent sent it: escaped here, every bit.
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>QC verdict: {e(host)}</title>",
           "<style>body{font-family:sans-serif}.pass{color:#070}.fail,.error,"
           ".timeout,.crashed{color:#b00}td,th{padding:2px 8px;text-align:left}</style>",
           "</head><body>", f"<h1>QC verdict for {e(host)}</h1>"]
    if r is None:
        out.append(f'<p class="error">No answer: {e(", ".join(missing) or host)} '
                   "did not answer in time.</p>")
    else:
        out.append(f'<p>Verdict: <strong class="{e(r.status)}">{e(r.status.upper())}</strong>'
                   f" &mdash; {e(r.summary)}</p>")
        if r.reason:
            out.append(f"<p>Reason: {e(r.reason)}</p>")
        when = r.finished_at.strftime("%Y-%m-%d %H:%M:%S UTC") if r.finished_at else "?"
        out.append(f"<p>Checked {e(when)} by muster agent {e(r.agent_version)}"
                   f" (job <code>{e(r.job)}</code>).</p>")
        out.append("<table><tr><th>Check</th><th>Status</th><th>Detail</th>"
                   "<th>Found</th></tr>")
        for name, c in checks_of(r.data):
            status = str(c.get("status", "?"))
            detail = str(c.get("summary") or c.get("reason") or "")
            out.append(f'<tr><td>{e(name)}</td><td class="{e(status)}">{e(status)}</td>'
                       f"<td>{e(detail)}</td><td>{e(facts_text(c))}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Run the install QC on one host and "
                                "print a verdict page.")
    p.add_argument("host")
    p.add_argument("--profile", type=Path, default=DEFAULT_PROFILE,
                   help="the QC profile, JSON (default: %(default)s)")
    p.add_argument("--html", action="store_true", help="print an HTML page")
    p.add_argument("--config", help="muster.conf (default: as the muster CLI)")
    p.add_argument("--wait", type=float, default=None,
                   help="seconds to wait for the answer (default: as the CLI)")
    a = p.parse_args(argv)
    try:
        profile = json.loads(a.profile.read_text())
    except (OSError, ValueError) as err:
        print(f"qc-verdict: cannot read the profile {a.profile}: {err}", file=sys.stderr)
        return EXIT_MUSTER

    page = html_page if a.html else text_page
    result: Optional[muster.Result] = None
    try:
        with muster.Session(a.config) as session:
            with session.run("qc.install", hosts=[a.host], args={"profile": profile},
                             wait=a.wait) as job:
                try:
                    for r in job:
                        result = r
                except muster.JobTimeout as t:
                    sys.stdout.write(page(a.host, None, t.missing))
                    return EXIT_NO_ANSWER
    except muster.Error as err:
        print(f"qc-verdict: {err}", file=sys.stderr)
        return EXIT_MUSTER
    sys.stdout.write(page(a.host, result, []))
    if result is None:
        return EXIT_NO_ANSWER
    return EXIT_PASS if result.status == "pass" else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
