# SPDX-License-Identifier: Apache-2.0
"""Every shipped example, fed to the program that reads it (issue 19: the
example policy that musterd refused, the docs' server.conf that
muster-server refused).

Where the examples are found
  1. Files in the source tree named *.example, *.conf, *.conf.in (outside
     build*/ and .git/): each must match a row of SOURCE_FILES, which says
     how it is read; an unmapped one fails, so a new example (a server
     conffile, ...) cannot ship unchecked.
  2. The packages (built by cpack, unpacked by conftest's `root`): every
     file under /etc (the conffiles) and under /usr/share/doc/*/examples/
     must be a row of INSTALLED, naming its source, and hold exactly its
     bytes; an unmapped one fails.
  3. Docs: fenced blocks in README.md and docs/*.md.  CONVENTION: a block
     that is a configuration names it in its info string, "LANG KIND":
         ```ini agent.conf       musterd's /etc/muster/agent.conf
         ```ini muster.conf      the CLI's muster.conf
         ```ini server.conf      muster-server's /etc/muster/server.conf
         ```text policy          /etc/muster/policy, muster-policy(5)
         ```text mosquitto.conf  a Mosquitto conf.d drop-in
         ```text mosquitto.acl   a Mosquitto acl_file
     (the first word only picks the highlighting).  A second word that is
     not one of these kinds fails, and so does an unmarked block that looks
     like one of them (looks_like()): mark it.
  4. Man pages: the blocks in the EXAMPLE(S) section of the pages in
     MAN_PAGES (scdoc has no info strings; the page says the kind).  Another
     page's example that looks like a configuration fails.

How each kind is read (check()): agent.conf by `musterd --check-config -c`,
muster.conf by `muster --check-config -c`, server.conf by `muster-server
--check-config -c`, policy by `musterd --check-config` with an agent.conf
whose [trust] policy names it, mosquitto.conf and mosquitto.acl by starting
the real mosquitto with them until it listens (it checks both at start).

Completion, the only changes made to an example before it is read:
  - Values that name files or folders (PATH_KEYS; the test checks that every
    set_path key of lib/config.c is there) are replaced by real files made
    here: the test PKI's CA, certificates and keys (scripts/gen-pki: host
    web1, op:alice, srv:main), alice's operator key (scripts/gen-keys),
    empty folders, the built runner and musterd, a one-rule policy.
    Only the first word of the value is replaced, so a comment after it
    stays and is read as the example has it.  Path keys an example leaves
    out are added to their section (the section appended if missing), so
    no program reads this machine's /etc or /var/lib: fragments, like the
    docs' "minimum for a real host", are completed that way.  muster-server's
    [server] user is handled the same way: the test's own user.
  - Conffiles are read as shipped and once more with every commented
    `# key = value` and `# [section]` line uncommented (their documented values must be
    valid too); a placeholder value there (`<hostname>`, `0123...ABCD`) is
    replaced as PLACEHOLDERS says, and an unknown one fails.
  - Mosquitto: /etc/mosquitto/muster/NAME becomes the PKI's NAME, each
    `listener PORT` a free port on 127.0.0.1, and the drop-in is included
    from a main file holding what Debian's /etc/mosquitto/mosquitto.conf
    sets (user, persistence_location, log_dest), as the docs install it.
"""
import fnmatch
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BUILD_DIR, SOURCE_DIR

MUSTERD = BUILD_DIR / "agent" / "musterd"
MUSTER = BUILD_DIR / "ctl" / "muster"
SERVER = BUILD_DIR / "server" / "muster-server"
RUNNER = BUILD_DIR / "runner" / "muster-runner"

KINDS = ("agent.conf", "muster.conf", "server.conf", "policy",
         "mosquitto.conf", "mosquitto.acl")

# Source files: fnmatch pattern (path from the source root) -> kind, or
# ("covered", file, text): read by another test, which must contain text.
SOURCE_FILES = {
    "agent/agent.conf.example": "agent.conf",
    "packaging/muster.conf.example": "muster.conf",
    "packaging/policy.example": "policy",
    "*/server.conf.example": "server.conf",
    "*/muster-server.conf.example": "server.conf",
    "broker-config/mosquitto.conf": "mosquitto.conf",
    # A template (@PORT@, @PKI@, ...) for the test and demo brokers: every
    # system test starts a mosquitto from it.
    "broker-config/dev.conf.in": ("covered", "tests/system/muster_fixtures.py",
                                  'DEV_CONF = SOURCE_DIR / "broker-config" / "dev.conf.in"'),
}

# Installed files (path in the package root) -> their source.
INSTALLED = {
    "etc/muster/agent.conf": "agent/agent.conf.example",
    "usr/share/doc/muster/examples/agent.conf": "agent/agent.conf.example",
    "usr/share/doc/muster/examples/policy": "packaging/policy.example",
    "usr/share/doc/muster/examples/muster.conf": "packaging/muster.conf.example",
    "etc/muster/server.conf": "server/server.conf.example",
    "usr/share/doc/muster-server/examples/server.conf": "server/server.conf.example",
}

# Man pages whose EXAMPLE(S) blocks are configurations, and how many such
# blocks each must have at least.
MAN_PAGES = {
    "agent.conf.5": ("agent.conf", 1),
    "muster.conf.5": ("muster.conf", 1),
    "muster-policy.5": ("policy", 1),
    "muster-server.8": ("server.conf", 0),
}

# (section, key) -> what stands in for the file it names: a key of
# Materials.paths.  Every set_path key of lib/config.c's tables is here.
PATH_KEYS = {
    "agent.conf": {
        ("agent", "state_dir"): "state_dir", ("agent", "runner"): "runner",
        ("agent", "modules_dir"): "empty_dir", ("agent", "facts_dir"): "empty_dir",
        ("broker", "ca"): "ca", ("broker", "cert"): "host_cert",
        ("broker", "key"): "host_key", ("trust", "operators"): "operators",
        ("agent", "sign_cert"): "host_sign_cert", ("agent", "sign_key"): "host_sign_key",
        ("trust", "gnupg_home"): "agent_gnupg", ("trust", "policy"): "policy",
        ("update", "agent"): "musterd",
    },
    "muster.conf": {
        ("broker", "ca"): "ca", ("broker", "cert"): "op_cert",
        ("broker", "key"): "op_key", ("operator", "key"): "operator_key",
        ("publisher", "gnupg_home"): "gnupg",
    },
    "server.conf": {
        ("broker", "ca"): "ca", ("broker", "cert"): "srv_cert",
        ("broker", "key"): "srv_key", ("server", "auth_file"): "auth_file",
        ("server", "www"): "empty_dir", ("archive", "url"): "archive",
        ("selftest", "key"): "operator_key", ("trust", "operators"): "operators",
        ("server", "sign_cert"): "srv_sign_cert", ("server", "sign_key"): "srv_sign_key",
        # Not a file: the account --check-config, run as root, checks as
        # (default muster-server, which only the package makes).
        ("server", "user"): "server_user",
    },
}
# Keys of PATH_KEYS that are not set_path keys, completed all the same.
ACCOUNT_KEYS = {"server.conf": {("server", "user")}}

# Placeholders in conffiles' commented lines: (section, key) -> value.
PLACEHOLDERS = {
    ("agent", "host"): "web1",		# the test certificate's CN
    ("trust", "publishers"): "publisher_fpr",
    ("server", "name"): "ctl1",		# server.conf: <hostname>
}

SECTION = re.compile(r"^\s*\[([^\]]+)\]")
KEYLINE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(\S+)(.*)$")
COMMENTED = re.compile(r"^#\s*(\[[a-z]+\]\s*|[a-z_]+\s*=\s.*)$")
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.")


# ---- materials -----------------------------------------------------------------


class Materials:
    """Real files for the values that name files.  World-readable (0755
    folders), so that a check run as another user ([agent] user) can
    read them as it would the real ones."""

    def __init__(self, base: Path):
        from muster_fixtures import gen_keys, gen_pki
        self.base = base
        pki = gen_pki(base / "pki", hosts=["web1"], operators=["alice"],
                      servers=["main"])
        self.keys = gen_keys(base / "keys", operators=["alice"], publisher="release")
        self.pki = pki
        (base / "empty").mkdir()
        (base / "state").mkdir()
        auth = base / "server.users"
        pw = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input="secret\n",
                            capture_output=True, text=True, check=True).stdout.strip()
        auth.write_text(f"ops:{pw}\n")
        # A policy of its own, so that an agent.conf example's failure is
        # its own (the shipped policy example is a case of its own).
        policy = base / "policy"
        policy.write_text("allow * ping all\n")
        self.paths = {
            "state_dir": base / "state", "runner": RUNNER, "musterd": MUSTERD,
            "empty_dir": base / "empty", "ca": pki.ca,
            "host_cert": pki.cert("web1"), "host_key": pki.key("web1"),
            # The host signing pair gen-pki writes next to the TLS pair.
            "host_sign_cert": pki.dir / "hosts" / "web1.sign.crt",
            "host_sign_key": pki.dir / "hosts" / "web1.sign.key",
            "op_cert": pki.cert("op:alice"), "op_key": pki.key("op:alice"),
            "srv_cert": pki.cert("srv:main"), "srv_key": pki.key("srv:main"),
            # The server's signing pair (release halts), as gen-pki writes it.
            "srv_sign_cert": pki.dir / "srv" / "main.sign.crt",
            "srv_sign_key": pki.dir / "srv" / "main.sign.key",
            "operators": self.keys.operators_dir,
            "operator_key": self.keys.operator_key("alice"),
            "agent_gnupg": self.keys.agent_gnupg, "gnupg": self.keys.gnupg_home,
            "policy": policy, "auth_file": auth, "archive": base / "server.db",
            "server_user": pwd.getpwuid(os.geteuid()).pw_name,
        }
        self.values = {"publisher_fpr": self.keys.publisher_fpr}
        for dirpath, dirs, files in os.walk(base):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        # gpg wants its homes private.
        for home in (self.keys.agent_gnupg, self.keys.gnupg_home):
            os.chmod(home, 0o700)
        # musterd refuses a signing key others may read (only its parent
        # reads it, as root when there is one).
        os.chmod(self.paths["host_sign_key"], 0o600)


@pytest.fixture(scope="module")
def mat():
    for b in (MUSTERD, MUSTER, RUNNER):
        assert b.exists(), f"{b} is not built (scripts/setup)"
    base = Path(tempfile.mkdtemp(prefix="muster-examples-"))
    os.chmod(base, 0o755)
    m = Materials(base)
    yield m
    m.keys.kill_gpg_agents()
    shutil.rmtree(base, ignore_errors=True)


# ---- completion ----------------------------------------------------------------


def complete_ini(text: str, kind: str, mat: Materials, uncomment: bool = False,
                 override: dict | None = None) -> str:
    """The example with its path values replaced and missing path keys
    added (module docstring); with uncomment, `# key = value` lines in a
    section are uncommented and their placeholders replaced.  override:
    {what: path} instead of mat.paths[what]."""
    paths = PATH_KEYS[kind]
    known = config_keys()[PROG[kind]] | ACCOUNT_KEYS.get(kind, set())
    where = {**mat.paths, **(override or {})}
    out: list[str] = []
    ends: dict[str, int] = {}		# section -> index after its last line
    seen: set[tuple[str, str]] = set()
    sec = None
    for line in text.splitlines():
        m = COMMENTED.match(line)
        if uncomment and sec is not None and m:
            line = m.group(1)
        s = SECTION.match(line)
        k = KEYLINE.match(line)
        if s:
            sec = s.group(1).strip()
        elif k and sec is not None:
            indent, key, eq, value, rest = k.groups()
            seen.add((sec, key))
            if (sec, key) in paths and "://" not in value:
                value = str(where[paths[(sec, key)]])
            elif PLACEHOLDER.search(value):
                assert uncomment and (sec, key) in PLACEHOLDERS, (
                    f"placeholder in [{sec}] {key}: {line!r} (examples need real "
                    f"values; PLACEHOLDERS lists those a conffile's comments show)")
                v = PLACEHOLDERS[(sec, key)]
                value = mat.values.get(v, v)
            line = f"{indent}{key}{eq}{value}{rest}"
        out.append(line)
        if sec is not None and line.strip():
            ends[sec] = len(out)
    for (s, key), what in sorted(paths.items()):
        if (s, key) in seen or (s, key) not in known:
            continue
        add = f"{key} = {where[what]}"
        if s in ends:
            at = ends[s]
            out.insert(at, add)
            ends = {x: i + 1 if i >= at else i for x, i in ends.items()}
        else:
            out += ["", f"[{s}]", add]
            ends[s] = len(out)
    return "\n".join(out) + "\n"


PROG = {"agent.conf": "agent", "muster.conf": "ctl", "server.conf": "server"}


_CONFIG_KEYS = None


def config_keys() -> dict[str, set[tuple[str, str]]]:
    """{agent|ctl|server: {(section, key)} of set_path keys} from lib/config.c."""
    global _CONFIG_KEYS
    if _CONFIG_KEYS is not None:
        return _CONFIG_KEYS
    src = (SOURCE_DIR / "lib" / "config.c").read_text()
    out = {}
    for prog in ("agent", "ctl", "server"):
        m = re.search(rf"conf_section {prog}_sections\[\] = \{{(.*?)\n\}};", src, re.S)
        assert m, f"no {prog}_sections in lib/config.c"
        keys = set()
        for sec, table in re.findall(r'\{ "(\w+)", (\w+),', m.group(1)):
            t = re.search(rf"conf_key {table}\[\] = \{{(.*?)\n\}};", src, re.S)
            assert t, table
            keys |= {(sec, k) for k in re.findall(r'KEY\w*\("(\w+)", set_path', t.group(1))}
        out[prog] = keys
    _CONFIG_KEYS = out
    return out


# ---- the programs ----------------------------------------------------------------


def run(argv, what):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "HOME": "/nonexistent"})
    assert r.returncode == 0, f"{what}: {argv[0]} said:\n{r.stdout}{r.stderr}"
    assert ": ok" in r.stdout, f"{what}: {r.stdout}{r.stderr}"
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_mosquitto(conf_d_text: str, mat: Materials, work: Path, what: str) -> None:
    """Start mosquitto with conf_d_text as a drop-in (completed as the module
    docstring says); it must come up listening, then it is stopped."""
    from muster_fixtures import mosquitto_binary
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    ports = []

    def listener(m):
        ports.append(free_port())
        return f"listener {ports[-1]} 127.0.0.1"

    text = conf_d_text.replace("/etc/mosquitto/muster/", f"{mat.pki.dir}/")
    text = re.sub(r"^listener\s+\d+(\s+\S+)?\s*$", listener, text, flags=re.M)
    assert ports, f"{what}: no listener line"
    conf_d = work / "conf.d"
    conf_d.mkdir(exist_ok=True)
    (conf_d / "muster.conf").write_text(text)
    main = work / "mosquitto.conf"
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    main.write_text(f"user {user}\npersistence_location {work}/\n"
                    f"log_dest stderr\ninclude_dir {conf_d}\n")
    p = subprocess.Popen([mosquitto_binary(), "-c", str(main)], cwd=work,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        up = False
        while time.monotonic() < deadline and p.poll() is None and not up:
            try:
                socket.create_connection(("127.0.0.1", ports[0]), timeout=0.5).close()
                up = True
            except OSError:
                time.sleep(0.05)
    finally:
        if p.poll() is None:
            p.terminate()
        out = p.communicate(timeout=10)[0]
    assert up, f"{what}: mosquitto did not come up:\n{out}\n--- drop-in:\n{text}"
    # As test_broker_acl.py's check of the production config: errors (but
    # not the OpenSSL one for the plain TCP probe above) and deprecations.
    # Warnings are not: "run as root" (the tests are), and the ACL's
    # patterns without %u that apply to everyone on purpose.
    bad = [ln for ln in out.splitlines()
           if ("Error" in ln and "OpenSSL Error" not in ln) or "deprecated" in ln.lower()]
    assert not bad, f"{what}: {bad}\n{out}"


def check(kind: str, text: str, what: str, mat: Materials, work: Path,
          conffile: bool = False) -> None:
    """Feed one example to the program that reads it."""
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    if kind in ("agent.conf", "muster.conf", "server.conf"):
        prog = {"agent.conf": MUSTERD, "muster.conf": MUSTER, "server.conf": SERVER}[kind]
        assert prog.exists(), f"{prog} is not built"
        variants = [False, True] if conffile else [False]
        for uncomment in variants:
            conf = work / (kind + (".uncommented" if uncomment else ""))
            conf.write_text(complete_ini(text, kind, mat, uncomment))
            run([prog, "--check-config", "-c", conf],
                f"{what}{' (every key uncommented)' if uncomment else ''} as {conf}")
    elif kind == "policy":
        pol = work / "policy"
        pol.write_text(text)
        conf = work / "agent.conf"
        conf.write_text(complete_ini("", "agent.conf", mat, override={"policy": pol}))
        run([MUSTERD, "--check-config", "-c", conf], f"{what} as {pol}")
    elif kind == "mosquitto.conf":
        run_mosquitto(text, mat, work, what)
    elif kind == "mosquitto.acl":
        acl = work / "acl"
        acl.write_text(text)
        run_mosquitto(f"allow_anonymous false\nacl_file {acl}\nlistener 1883\n",
                      mat, work, what)
    else:
        raise AssertionError(f"{what}: unknown kind {kind}")


# ---- finding the examples --------------------------------------------------------


def source_files() -> list[str]:
    out = []
    for dirpath, dirs, files in os.walk(SOURCE_DIR):
        rel = os.path.relpath(dirpath, SOURCE_DIR)
        dirs[:] = [d for d in dirs if not (rel == "." and (d.startswith("build") or
                                                         d == ".git"))]
        for f in files:
            if f.endswith((".example", ".conf", ".conf.in")):
                out.append(os.path.normpath(os.path.join(rel, f)))
    return sorted(out)


def source_kind(rel: str):
    for pat, kind in SOURCE_FILES.items():
        if fnmatch.fnmatch(rel, pat):
            return kind
    return None


def fenced_blocks(text: str):
    """(line number, info string, body) of each ``` block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(.*)$", lines[i])
        if m:
            indent, info = m.group(1), m.group(2).strip()
            j = i + 1
            while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
                j += 1
            body = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln
                             for ln in lines[i + 1:j])
            yield i + 1, info, body + "\n"
            i = j
        i += 1


MUSTER_SECTIONS = ("agent", "broker", "wake", "trust", "limits", "modules", "update",
                   "operator", "publisher", "server", "watch", "archive", "selftest")


def looks_like(body: str):
    """The kind an unmarked block seems to be, or None."""
    lines = [ln.strip() for ln in body.splitlines()
             if ln.strip() and not ln.strip().startswith(("#", ";"))]
    if not lines:
        return None
    m = SECTION.match(lines[0])
    if m and m.group(1) in MUSTER_SECTIONS:
        return "a muster INI file"
    if any(re.match(r"^(allow|deny)\s+\S+\s+\S+\s+\S+", ln) for ln in lines):
        return "policy"
    if any(re.match(r"^(listener|acl_file|cafile|certfile|keyfile|crlfile)\s", ln)
           for ln in lines):
        return "mosquitto.conf"
    if any(re.match(r"^user\s+\S+$", ln) for ln in lines) and any(
            re.match(r"^(topic|pattern)\s+(read|write|readwrite|deny)\s", ln) for ln in lines):
        return "mosquitto.acl"
    return None


def doc_examples():
    """(where, kind, body) of every marked block in README.md and docs/*.md;
    unmarked ones that look like configurations, and unknown kinds, are
    returned as kind None with the reason in body."""
    out = []
    for md in [SOURCE_DIR / "README.md", *sorted((SOURCE_DIR / "docs").glob("*.md"))]:
        for line, info, body in fenced_blocks(md.read_text()):
            where = f"{md.relative_to(SOURCE_DIR)}:{line}"
            words = info.split()
            if len(words) >= 2:
                if words[1] not in KINDS:
                    out.append((where, None, f"unknown kind '{words[1]}' (want one of "
                                f"{', '.join(KINDS)})"))
                else:
                    out.append((where, words[1], body))
            elif looks_like(body):
                out.append((where, None, f"looks like {looks_like(body)} but is not "
                            f"marked: ```LANG KIND (tests/packaging/test_examples.py)"))
    return out


def man_examples():
    """(where, kind, body) of the EXAMPLE(S) blocks of every man page (kind
    None with a reason for a page not in MAN_PAGES whose block looks like a
    configuration)."""
    out = []
    for page in sorted((SOURCE_DIR / "docs" / "man").glob("*.scd")):
        name = page.name[:-4]
        text = page.read_text()
        # Section headers are upper case; comments inside examples are not.
        parts = re.split(r"^# (EXAMPLES?)\n", text, flags=re.M)
        for k in range(2, len(parts), 2):
            section = re.split(r"^# [A-Z][A-Z0-9 ]*$", parts[k], flags=re.M)[0]
            for line, info, body in fenced_blocks(section):
                where = f"docs/man/{page.name} EXAMPLE block {line}"
                if name in MAN_PAGES:
                    out.append((where, MAN_PAGES[name][0], body))
                elif looks_like(body):
                    out.append((where, None, f"looks like {looks_like(body)}: add "
                                f"{name} to MAN_PAGES"))
    return out


# ---- the tests -------------------------------------------------------------------


def test_every_config_key_naming_a_file_is_completed():
    """PATH_KEYS knows every set_path key, so no example makes a program
    read this machine's /etc or /var/lib (or a new path key goes unseen)."""
    have = config_keys()
    for prog, kind in (("agent", "agent.conf"), ("ctl", "muster.conf"),
                       ("server", "server.conf")):
        missing = have[prog] - set(PATH_KEYS[kind])
        assert not missing, f"{kind}: add to PATH_KEYS: {sorted(missing)}"


def test_source_examples(mat, tmp_path):
    files = source_files()
    assert "agent/agent.conf.example" in files and "packaging/policy.example" in files, files
    unmapped = [f for f in files if source_kind(f) is None]
    assert not unmapped, (f"examples with no row in SOURCE_FILES "
                          f"(tests/packaging/test_examples.py): {unmapped}")
    for i, rel in enumerate(files):
        kind = source_kind(rel)
        if isinstance(kind, tuple):
            _, by, text = kind
            assert text in (SOURCE_DIR / by).read_text(), f"{rel}: {by} no longer reads it"
            continue
        check(kind, (SOURCE_DIR / rel).read_text(), rel, mat, tmp_path / f"src{i}",
              conffile=rel.endswith(".example"))


def test_doc_examples(mat, tmp_path):
    found = doc_examples()
    bad = [f"{w}: {b.strip()}" for w, k, b in found if k is None]
    assert not bad, "\n".join(bad)
    kinds = {k for _, k, _ in found}
    assert {"agent.conf", "policy", "muster.conf"} <= kinds, found
    for i, (where, kind, body) in enumerate(found):
        check(kind, body, where, mat, tmp_path / f"doc{i}")


def test_man_examples(mat, tmp_path):
    found = man_examples()
    bad = [f"{w}: {b}" for w, k, b in found if k is None]
    assert not bad, "\n".join(bad)
    for name, (kind, least) in MAN_PAGES.items():
        n = sum(1 for w, k, _ in found if w.startswith(f"docs/man/{name}.scd "))
        assert n >= least, f"{name}(scd) has {n} EXAMPLE blocks, want {least}"
    for i, (where, kind, body) in enumerate(found):
        check(kind, body, where, mat, tmp_path / f"man{i}")


def test_policy_page_shows_the_installed_example():
    """muster-policy(5) says /usr/share/doc/muster/examples/policy is "the
    example above": the same rules, spacing aside."""
    def rules(text):
        return [" ".join(ln.split()) for ln in text.splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    page = [b for w, k, b in man_examples() if w.startswith("docs/man/muster-policy.5")]
    shipped = (SOURCE_DIR / "packaging" / "policy.example").read_text()
    assert len(page) == 1 and rules(page[0]) == rules(shipped), (page, shipped)


def test_installed_examples_are_the_checked_sources(root):
    """Each conffile and each file in the packages' examples/ folders is a
    source checked above, byte for byte."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for f in files:
            p = os.path.normpath(os.path.join(rel, f))
            if p.startswith("etc/") or fnmatch.fnmatch(p, "usr/share/doc/*/examples/*"):
                found.append(p)
    assert "etc/muster/agent.conf" in found, found
    unmapped = [p for p in found if p not in INSTALLED]
    assert not unmapped, (f"installed configuration files with no row in INSTALLED "
                          f"(tests/packaging/test_examples.py): {unmapped}")
    for p in found:
        src = INSTALLED[p]
        assert source_kind(src) is not None, f"{p}: {src} is not in SOURCE_FILES"
        assert (root / p).read_bytes() == (SOURCE_DIR / src).read_bytes(), (
            f"/{p} differs from {src}")


@pytest.mark.parametrize("kind,text,override,said", [
    ("agent.conf", "[agent]\nmax_jobs = 0\n", {}, "max_jobs"),
    ("server.conf", "[server]\nname = ctl1   # a '#' comment\n", {}, "bad name"),
    ("policy", "allow alice pong all\n", {}, "unknown kind 'pong'"),
    # muster --check-config reads what the commands will need.
    ("muster.conf", "[broker]\nca = x\n", {"ca": "/nonexistent/ca.crt"},
     "[broker] ca /nonexistent/ca.crt: No such file"),
    ("muster.conf", "[broker]\ncert = x\nkey = y\n", {"op_key": "host_key"},
     "does not belong to [broker] cert"),
    ("muster.conf", "[operator]\nkey = x\n", {"operator_key": "operator_pub"}, "alice.pub"),
    ("muster.conf", "[publisher]\ngnupg_home = x\n", {"gnupg": "policy"}, "not a folder"),
    ("mosquitto.conf", "listener 8883\nno_such_option true\n", {}, "no_such_option"),
    ("mosquitto.acl", "user web1\ntopic reed muster/v1/x\n", {}, "reed"),
])
def test_each_check_can_fail(mat, tmp_path, kind, text, override, said):
    """The checks above are not vacuous: a broken example of each kind is
    refused, for its own reason."""
    mat.paths["operator_pub"] = mat.keys.operator_pub("alice")
    swap = {k: mat.paths.get(v, v) for k, v in override.items()}
    saved = {k: mat.paths[k] for k in swap}
    mat.paths.update(swap)
    try:
        with pytest.raises(AssertionError) as e:
            check(kind, text, f"broken {kind}", mat, tmp_path)
    finally:
        mat.paths.update(saved)
    assert said in str(e.value), str(e.value)
