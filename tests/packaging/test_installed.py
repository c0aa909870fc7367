# SPDX-License-Identifier: Apache-2.0
"""The installed programs, from the .debs unpacked into a scratch root:
musterd checks the shipped agent.conf; a module author builds the
template outside the tree against the installed SDK and runs it; the
installed musterd, runner, modules and CLI answer a job through a real
broker."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import need


def run(*args, **kw):
    kw.setdefault("timeout", 60)
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


def test_musterd_accepts_the_installed_config(root):
    # --check-config also checks what the service needs on this host: the
    # runner and the operators' folder, here under the scratch root.
    conf = root / "checked.conf"
    (root / "etc/muster/operators").mkdir(parents=True, exist_ok=True)
    conf.write_text((root / "etc/muster/agent.conf").read_text() +
                    f"\n[agent]\nrunner = {root}/usr/libexec/muster/muster-runner\n"
                    f"[trust]\noperators = {root}/etc/muster/operators\n")
    r = run(root / "usr/sbin/musterd", "--check-config", "-c", conf)
    assert r.returncode == 0, r.stderr
    assert ": ok (host " in r.stdout
    # ...and the check is real: a bad key in the same file is named.
    bad = root / "bad.conf"
    bad.write_text((root / "etc/muster/agent.conf").read_text() + "\n[limits]\ntimeout = soon\n")
    r = run(root / "usr/sbin/musterd", "--check-config", "-c", bad)
    assert r.returncode == 1 and "timeout" in r.stderr, r.stderr


def test_template_module_builds_outside_the_tree_and_runs(root, tmp_path):
    need("cmake", "cc")
    mod = tmp_path / "hello"
    # The three commands of muster-module(7), with the SDK under `root`.
    shutil.copytree(root / "usr/share/muster/module-template", mod)
    env = dict(os.environ, CMAKE_PREFIX_PATH=str(root / "usr"))
    r = run("cmake", "-S", mod, "-B", mod / "build", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("cmake", "--build", mod / "build", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    so = mod / "build/hello.so"
    runner = root / "usr/libexec/muster/muster-runner"

    r = run(runner, "--describe", so)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["name"] == "hello" and d["version"] == "1.0.0", d
    r = run(runner, "--run", so, "--json", "who=packager")
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["status"] == "pass" and res["output"] == ["hello, packager"], res
    assert res["data"]["greeted"] == "packager" and res["data"]["kernel"], res
    r = run(runner, "--run", so, "who=")
    assert r.returncode == 1, r.stdout + r.stderr   # the template's FAIL path


def test_pkg_config_file_builds_a_module(root, tmp_path):
    need("pkg-config", "cc")
    # The .pc is relocatable (${pcfiledir}): no sysroot, no extra -I.
    env = dict(os.environ, PKG_CONFIG_PATH=str(root / "usr/share/pkgconfig"))
    env.pop("PKG_CONFIG_SYSROOT_DIR", None)
    r = run("pkg-config", "--cflags", "muster-module", env=env)
    assert r.returncode == 0, r.stderr
    so = tmp_path / "hello.so"
    r = run("sh", "-c", f"cc -std=c11 -fPIC -shared -fvisibility=hidden -Wl,--no-undefined "
            f"$(pkg-config --cflags muster-module) "
            f"-o {so} {root}/usr/share/muster/module-template/hello.c", env=env)
    assert r.returncode == 0, r.stderr
    r = run(root / "usr/libexec/muster/muster-runner", "--describe", so)
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "hello"


def test_installed_agent_runs_a_job_from_the_installed_cli(root, tmp_path):
    need("mosquitto", "openssl", "gpg")
    from muster_fixtures import Agent, Broker, gen_keys, gen_pki, write_cli_conf
    pki = gen_pki(tmp_path / "pki", hosts=["pk1"], operators=["alice"])
    keys = gen_keys(tmp_path / "keys", operators=["alice"], publisher="release")
    broker = Broker(pki, tmp_path / "broker").start()
    agent = None
    try:
        agent = Agent("pk1", broker, keys, tmp_path / "agent",
                      binary=root / "usr/sbin/musterd",
                      runner=root / "usr/libexec/muster/muster-runner",
                      extra={"agent": {"modules_dir": root / "usr/lib/muster/modules"}})
        agent.start(timeout=30)
        conf = write_cli_conf(tmp_path / "muster.conf", broker, keys=keys)
        r = run(root / "usr/bin/muster", "-c", conf, "run", "-H", "pk1", "os.release",
                "--json", "--wait", "30s")
        assert r.returncode == 0, r.stdout + r.stderr
        res = json.loads(r.stdout.splitlines()[0])
        assert res["host"] == "pk1" and res["status"] == "pass", res
        assert res["module"] == "os.release"
    finally:
        if agent is not None:
            agent.cleanup()
        broker.stop()
        keys.kill_gpg_agents()


def test_template_module_published_with_the_installed_cli(root, tmp_path):
    """The last step of a module author's loop: the module built from the
    installed template is published with the installed `muster`, and the
    broker then holds its signed pointer."""
    need("cmake", "cc", "mosquitto", "openssl", "gpg")
    from muster_fixtures import Broker, gen_keys, gen_pki
    mod = tmp_path / "hello"
    shutil.copytree(root / "usr/share/muster/module-template", mod)
    env = dict(os.environ, CMAKE_PREFIX_PATH=str(root / "usr"))
    assert run("cmake", "-S", mod, "-B", mod / "build", env=env).returncode == 0
    assert run("cmake", "--build", mod / "build", env=env).returncode == 0
    pki = gen_pki(tmp_path / "pki", publishers=["release"])
    keys = gen_keys(tmp_path / "k", publisher="release")
    broker = Broker(pki, tmp_path / "broker").start()
    try:
        conf = tmp_path / "publisher.conf"
        conf.write_text(f"[broker]\nuri = {broker.uri}\nca = {pki.ca}\n"
                        f"cert = {pki.cert('pub:release')}\nkey = {pki.key('pub:release')}\n"
                        f"\n[publisher]\ngnupg_home = {keys.gnupg_home}\n"
                        f"fingerprint = {keys.publisher_fpr}\n")
        muster = root / "usr/bin/muster"
        r = run(muster, "-c", conf, "module", "publish", mod / "build/hello.so",
                env=dict(os.environ,
                         MUSTER_RUNNER=str(root / "usr/libexec/muster/muster-runner")))
        assert r.returncode == 0, r.stdout + r.stderr
        r = run(muster, "-c", conf, "module", "list", "--json")
        assert r.returncode == 0, r.stderr
        mods = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        assert any(m.get("name") == "hello" and m.get("version") == "1.0.0" for m in mods), mods
    finally:
        broker.stop()
        keys.kill_gpg_agents()
