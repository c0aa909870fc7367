#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Helpers of scripts/bench (run with /usr/bin/python3: Debian's cryptography).

  certs PKI_DIR PREFIX N      N hosts' TLS and signing pairs PREFIX0001.. and
                              PREFIX0001.sign.. signed by the CA of PKI_DIR
                              (as gen-pki makes them, in ms instead of 70 ms
                              each); into PKI_DIR/hosts/
  cpu PID...                  CPU seconds of these processes, their threads,
                              their live child processes (musterd's network
                              process) and their reaped children (runners)
  mem PID                     PSS and RSS (KiB) of PID and of each child
                              (smaps_rollup): "pid role pss rss"
  pss PID...                  total PSS (KiB) of these and their children
  runtime PID...              CPU time in ns (schedstat, exact) of every
                              thread of these and their children (live only)
  wakeups PID...              scheduler timeslices (run count) summed over
                              every thread of these processes and their
                              children: the number of wake-ups
  storm LOG SINCE_EPOCH PREFIX   per-second counts of "New client connected
                              ... as PREFIX..." lines in a mosquitto log
                              after SINCE (log_timestamp_format %s)
"""
import datetime
import os
import sys
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def children(pid):
    out = []
    for t in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (t / "children").read_text().split()]
        except OSError:
            pass
    return out


def stat_fields(pid):
    s = Path(f"/proc/{pid}/stat").read_text()
    return s[s.rindex(")") + 2:].split()


def cpu(pids):
    total = 0
    for p in pids:
        try:
            f = stat_fields(p)
        except OSError:
            continue
        # utime stime cutime cstime: fields 14-17 (1-based), here 11-14
        total += sum(int(x) for x in f[11:15])
        for c in children(p):
            try:
                g = stat_fields(c)
            except OSError:
                continue
            total += sum(int(x) for x in g[11:13])
    return total / TICK


def mem(pid):
    rows = []
    for p, role in [(pid, "parent")] + [(c, "child") for c in children(pid)]:
        v = {}
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                k, _, rest = line.partition(":")
                if rest.strip().endswith("kB"):
                    v[k] = int(rest.split()[0])
            name = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if role == "child" and b"--net" in name:
            role = "net"
        rows.append((p, role, v.get("Pss", 0), v.get("Rss", 0)))
    return rows


def schedstat(pids, field):
    n = 0
    for p in list(pids) + [c for p in pids for c in children(p)]:
        for t in Path(f"/proc/{p}/task").glob("*"):
            try:
                n += int((t / "schedstat").read_text().split()[field])
            except (OSError, IndexError):
                pass
    return n


def wakeups(pids):
    return schedstat(pids, 2)


# id-kp-documentSigning (RFC 9336): lib/hostsig.h HOSTSIG_EKU_OID
HOSTSIG_EKU_OID = "1.3.6.1.5.5.7.3.36"


def certs(pki, prefix, n):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(Path(pki, "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate(Path(pki, "ca.crt").read_bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    out = Path(pki, "hosts")
    out.mkdir(exist_ok=True)
    usages = {
        "": x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
        ".sign": x509.ExtendedKeyUsage([x509.ObjectIdentifier(HOSTSIG_EKU_OID)]),
    }

    def pair(base, name, eku):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False,
                                             False, False, False), True)
                .add_extension(eku, False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                    key.public_key()), False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), False)
                .sign(ca_key, hashes.SHA256()))
        kp = out / f"{base}.key"
        kp.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        kp.chmod(0o600)
        (out / f"{base}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    for i in range(1, n + 1):
        name = f"{prefix}{i:04d}"
        for suffix, eku in usages.items():
            pair(name + suffix, name, eku)


def storm(log, since, prefix):
    per = {}
    for line in Path(log).read_text(errors="replace").splitlines():
        if "New client connected" not in line or f" as {prefix}" not in line:
            continue
        try:
            t = int(line.split(":", 1)[0])
        except ValueError:
            continue
        if t >= since:
            per[t - since] = per.get(t - since, 0) + 1
    for s in range(0, max(per) + 1 if per else 0):
        print(s, per.get(s, 0))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "certs":
        certs(args[0], args[1], int(args[2]))
    elif cmd == "cpu":
        print(f"{cpu([int(a) for a in args]):.2f}")
    elif cmd == "mem":
        for r in mem(int(args[0])):
            print(*r)
    elif cmd == "pss":
        print(sum(r[2] for a in args for r in mem(int(a))))
    elif cmd == "runtime":
        print(schedstat([int(a) for a in args], 0))
    elif cmd == "wakeups":
        print(wakeups([int(a) for a in args]))
    elif cmd == "storm":
        storm(args[0], int(args[1]), args[2])
    else:
        sys.exit(f"bench-util: unknown command {cmd}")


if __name__ == "__main__":
    main()
