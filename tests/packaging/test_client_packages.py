# SPDX-License-Identifier: Apache-2.0
"""libmuster-client's packages (design.md §10, issue 26): libmuster-client0
(the shared library, its symbols file and ldconfig trigger),
libmuster-client-dev (header, .so link, pkg-config file, man page) and
python3-muster (the ctypes binding): what each holds and declares, the
symbols file against the library's real dynamic symbols, the binding
importable from the unpacked packages alone, and lintian."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SOURCE_DIR, control_file
from test_contents import contents, field

CLIENT = ("libmuster-client0", "libmuster-client-dev", "python3-muster")
SYMBOLS = SOURCE_DIR / "packaging" / "deb" / "libclient" / "symbols"

pytestmark = pytest.mark.skipif(not (SOURCE_DIR / "client" / "CMakeLists.txt").exists(),
                                reason="no client/ (libmuster-client) in this tree")


def version():
    m = re.search(r"project\(muster VERSION (\S+)",
                  (SOURCE_DIR / "CMakeLists.txt").read_text())
    assert m
    return m.group(1)


def lib_files(files, name):
    return sorted(f for f in files if re.fullmatch(rf"/usr/lib(/[a-z0-9_-]+)?/{re.escape(name)}", f))


def test_client_packages_are_built(debs):
    assert set(CLIENT) <= set(debs), sorted(debs)


def test_library_package(debs, tmp_path):
    deb = debs["libmuster-client0"]
    files = contents(deb)
    (so0,) = lib_files(files, "libmuster-client.so.0")
    real = lib_files(files, f"libmuster-client.so.{version()}")
    assert real and files[real[0]].startswith("-rw-r--r--"), files
    assert files[so0].startswith("l"), "libmuster-client.so.0 is the SONAME link"
    # Nothing for building against it: that is the -dev package's.
    assert not lib_files(files, "libmuster-client.so")
    assert not [f for f in files if f.startswith(("/usr/include", "/usr/share/man"))], files
    for w in ("/usr/share/doc/libmuster-client0/copyright",
              "/usr/share/doc/libmuster-client0/changelog.gz"):
        assert w in files, w
    assert field(deb, "Section") == "libs"
    assert field(deb, "Architecture") not in ("all", "")
    # dpkg-shlibdeps found what the library links.
    deps = field(deb, "Depends")
    for lib in ("libc6 (>=", "libssl3 (>=", "libpaho-mqtt1.3 (>=", "libmsgpackc2 (>="):
        assert lib in deps, deps
    trig = control_file(deb, "triggers", tmp_path)
    assert trig is not None and trig.read_text().split() == ["activate-noawait", "ldconfig"]
    sym = control_file(deb, "symbols", tmp_path)
    assert sym is not None and sym.read_text() == SYMBOLS.read_text()
    shlibs = control_file(deb, "shlibs", tmp_path)
    assert shlibs is not None and shlibs.read_text() == \
        f"libmuster-client 0 libmuster-client0 (>= {version()})\n"
    # The trigger runs ldconfig: no maintainer script calls it again.
    for script in ("preinst", "postinst", "prerm", "postrm"):
        assert control_file(deb, script, tmp_path) is None, script


def dynamic_symbols(lib: Path) -> set[str]:
    """NAME@VERSION of every symbol the library defines, as the symbols file
    writes them: the version script (client/libmuster-client.map) puts each
    in MUSTER_CLIENT_0, and the version node itself is a symbol too."""
    out = subprocess.run(["nm", "-D", "--defined-only", "--with-symbol-versions",
                          str(lib)], capture_output=True, text=True, check=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if not parts:
            continue
        kind, sym = parts[-2], parts[-1]
        name, _, ver = sym.replace("@@", "@").partition("@")
        if not ver and kind == "A":        # the version node
            ver = name
        syms.add(f"{name}@{ver or 'Base'}")
    return syms


def test_symbols_file_is_the_exported_abi(root):
    """Every symbol the library exports is in the symbols file, at 0.1.0
    (the first release), and nothing else is: the file is what
    dpkg-shlibdeps reads to make programs depend on a new enough
    libmuster-client0."""
    if shutil.which("nm") is None:
        pytest.skip("nm is not installed (binutils)")
    (lib,) = [p for p in root.glob("usr/lib/**/libmuster-client.so.0")]
    exported = dynamic_symbols(lib)
    lines = SYMBOLS.read_text().splitlines()
    assert lines[0] == "libmuster-client.so.0 libmuster-client0 #MINVER#"
    # dpkg-shlibdeps: a program built against -dev depends on this version.
    assert lines[1] == "* Build-Depends-Package: libmuster-client-dev"
    listed = {}
    for line in lines[2:]:
        m = re.fullmatch(r" (\S+@\S+) (\S+)", line)
        assert m, f"not a symbols line: {line!r}"
        listed[m.group(1)] = m.group(2)
    assert set(listed) == exported, (
        f"exported, not listed: {sorted(exported - set(listed))}; "
        f"listed, not exported: {sorted(set(listed) - exported)}")
    assert set(listed.values()) == {"0.1.0"}
    # ... and the header declares exactly those functions.
    header = (SOURCE_DIR / "client" / "include" / "muster" / "client.h").read_text()
    declared = set(re.findall(r"^MUSTER_API [^(]*?\b(muster_[a-z0-9_]+)\(", header, re.M))
    assert declared == {s.split("@")[0] for s in exported if s.startswith("muster_")}
    assert len(declared) == len(exported) - 1, "the version node, and the API"


def test_dev_package(debs):
    deb = debs["libmuster-client-dev"]
    files = contents(deb)
    for w in ("/usr/include/muster/client.h", "/usr/share/man/man3/muster-client.3.gz",
              "/usr/share/doc/libmuster-client-dev/copyright"):
        assert w in files, w
    (link,) = lib_files(files, "libmuster-client.so")
    assert files[link].startswith("l")
    assert [f for f in files if f.endswith("/pkgconfig/muster-client.pc")], files
    assert not lib_files(files, "libmuster-client.so.0")
    assert field(deb, "Section") == "libdevel"
    assert f"libmuster-client0 (= {version()})" in field(deb, "Depends")


def test_python_package(debs, tmp_path):
    deb = debs["python3-muster"]
    files = contents(deb)
    pkg = "/usr/lib/python3/dist-packages/muster"
    want = {f"{pkg}/__init__.py", f"{pkg}/_native.py", f"{pkg}/py.typed"}
    shipped = {f for f in files if f.startswith(pkg + "/")}
    assert shipped == want, shipped
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    for f in want:
        assert files[f] == "-rw-r--r--", (f, files[f])
    assert "/usr/share/doc/python3-muster/copyright" in files
    assert field(deb, "Architecture") == "all"
    assert field(deb, "Section") == "python"
    deps = [d.strip() for d in field(deb, "Depends").split(",")]
    assert "python3" in deps and f"libmuster-client0 (= {version()})" in deps, deps


def test_binding_imports_from_the_packages(root):
    """The unpacked python3-muster and libmuster-client0 alone: the binding
    loads the packaged library (its SONAME) and asks its version."""
    (lib,) = [p for p in root.glob("usr/lib/**/libmuster-client.so.0")]
    # scripts/test --sanitize packs the ASan build: such a library does not
    # load into a Python started without the ASan runtime.
    if b"__asan_init" in lib.read_bytes():
        pytest.skip("an ASan library does not load into a Python without the ASan runtime")
    env = {"PYTHONPATH": str(root / "usr/lib/python3/dist-packages"),
           "LD_LIBRARY_PATH": str(lib.parent), "PYTHONDONTWRITEBYTECODE": "1",
           "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c",
                        "import muster; print(muster.__file__); print(muster.library_version())"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    path, ver = r.stdout.split()
    assert path == str(root / "usr/lib/python3/dist-packages/muster/__init__.py")
    assert ver == version()


def test_lintian_clean(debs):
    """No error or warning from lintian on the three packages (as
    tests/install/test_install.py checks every package)."""
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (scripts/setup installs it)")
    r = subprocess.run(["lintian", "--tag-display-limit", "0",
                        *(str(debs[p]) for p in CLIENT)],
                       capture_output=True, text=True, timeout=600)
    bad = [ln for ln in (r.stdout + r.stderr).splitlines()
           if re.match(r"^[EW]: ", ln)
           and "running with root privileges is not recommended" not in ln]
    assert not bad, "lintian:\n" + "\n".join(bad)


def test_shlibdeps_reads_the_symbols_file(debs, tmp_path):
    """A program built against the packages (the C example, through
    libmuster-client-dev's .so link) gets Depends: libmuster-client0
    (>= 0.1.0) from dpkg-shlibdeps, which reads the symbols file of the
    library package as a package build would (-S)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    example = SOURCE_DIR / "examples" / "client" / "qc-host.c"
    if not example.exists():
        pytest.skip(f"no {example}")
    work = tmp_path / "shlibdeps"
    pkg = work / "debian" / "libmuster-client0"
    dev = work / "dev"
    (work / "debian").mkdir(parents=True)
    (work / "debian" / "control").write_text("")
    subprocess.run(["dpkg-deb", "-x", str(debs["libmuster-client0"]), str(pkg)], check=True)
    subprocess.run(["dpkg-deb", "-e", str(debs["libmuster-client0"]), str(pkg / "DEBIAN")],
                   check=True)
    # Without the shlibs file (which says the same): the answer then can
    # only come from the symbols file.
    (pkg / "DEBIAN" / "shlibs").unlink()
    subprocess.run(["dpkg-deb", "-x", str(debs["libmuster-client-dev"]), str(dev)], check=True)
    # (a wildcard: the exact name would skip the link, dangling here)
    (link,) = [p for p in dev.glob("usr/lib/**/libmuster-client.s*")
               if p.name == "libmuster-client.so"]
    libdir = pkg / link.parent.relative_to(dev)
    shutil.copy(link, libdir, follow_symlinks=False)
    prog = work / "qc-host"
    subprocess.run(["gcc", "-o", str(prog), str(example), f"-I{dev / 'usr/include'}",
                    f"-L{libdir}", "-lmuster-client"], check=True, timeout=120)
    r = subprocess.run(["dpkg-shlibdeps", "-O", f"-S{pkg}", f"-l{libdir}", str(prog)],
                       cwd=work, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(r"shlibs:Depends=(.*)\n", r.stdout)
    assert m, r.stdout
    deps = [d.strip() for d in m.group(1).split(",")]
    assert f"libmuster-client0 (>= {version()})" in deps, deps
