# SPDX-License-Identifier: Apache-2.0
"""muster - send signed jobs to muster agents and read their verified results.

The Python binding of libmuster-client (muster-client(3), design.md §10):
the same calls as the C API, with Python objects only.

    import muster
    for r in muster.run("disk.usage", hosts=["web1"], args={"max_pct": 90}):
        print(r.host, r.status, r.summary)

A Session is one operator identity on one broker, opened from the CLI's
configuration (muster.conf(5): $MUSTER_CONFIG, else
~/.config/muster/muster.conf) or explicit settings.  The operator's signing
key is read by the library and never leaves this process.  Session.run(),
.ping() and .version() send a job and return a Job; iterating over it yields
each host's Result as it arrives, every one with its host's signature
checked (a forged one is never yielded: it is counted in summary().forged).
Iteration ends when every expected host has answered; when the wait ends
first it raises JobTimeout naming the hosts that did not answer (after
yielding every result that did come).

Threads: a session and its jobs are for one thread at a time (the library
locks nothing); separate sessions may be used on separate threads.

Every error is a muster.Error subclass carrying the library's code (.rc)
and its message.  Results are plain Python values copied out of the
library, valid after their job and session are closed.
"""
from __future__ import annotations

import ctypes
import datetime as _dt
import json as _json
import os
import weakref
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

from . import _native

__all__ = [
    "Error", "LibraryError", "ConfigError", "OperatorKeyError", "ConnectError",
    "ConnectionLost", "InvalidArgument", "RefusedError", "JobTimeout",
    "InternalError", "Session", "Job", "Result", "Summary", "run", "ping",
    "version", "library_version",
]

__version__ = "0.1.0"

PathLike = Union[str, "os.PathLike[str]"]
Names = Union[str, Iterable[str]]


# ---- errors ---------------------------------------------------------------

class Error(Exception):
    """Any failure of the library.  rc: the muster_rc code (0 when the
    binding itself refused before calling the library); message: the text,
    from the session (muster_session_error) when there is one."""

    def __init__(self, message: str, rc: int = 0):
        super().__init__(message)
        self.rc = rc
        self.message = message


class LibraryError(Error):
    """libmuster-client.so.0 is not installed or is not the expected ABI."""


class ConfigError(Error):
    """No configuration, or one that does not hold (MUSTER_ECONFIG)."""


class OperatorKeyError(Error):
    """The operator key cannot be read or used (MUSTER_EKEY)."""


class ConnectError(Error, ConnectionError):
    """The broker cannot be reached, or refused us (MUSTER_ECONNECT)."""


class ConnectionLost(ConnectError):
    """The broker connection went away during the job (MUSTER_ELOST)."""


class InvalidArgument(Error, ValueError):
    """A bad argument: module or host name, args, filter (MUSTER_EINVAL)."""


class RefusedError(Error):
    """The broker refused the job: its ACL (MUSTER_EREFUSED)."""


class JobTimeout(Error, TimeoutError):
    """The wait ended with expected hosts missing (MUSTER_ETIMEOUT).
    missing: those hosts, sorted; summary: the job's final counts."""

    def __init__(self, message: str, missing: list[str], summary: "Summary"):
        super().__init__(message, _native.ETIMEOUT)
        self.missing = missing
        self.summary = summary


class InternalError(Error):
    """Out of memory or a library fault (MUSTER_ENOMEM, MUSTER_EINTERNAL)."""


_ERRORS: dict[int, type[Error]] = {
    _native.ECONFIG: ConfigError,
    _native.EKEY: OperatorKeyError,
    _native.ECONNECT: ConnectError,
    _native.ELOST: ConnectionLost,
    _native.EINVAL: InvalidArgument,
    _native.EREFUSED: RefusedError,
    _native.ENOMEM: InternalError,
    _native.EINTERNAL: InternalError,
}


def _lib() -> ctypes.CDLL:
    try:
        return _native.lib()
    except _native.LibraryMissing as e:
        raise LibraryError(str(e)) from None


def _error(rc: int, message: str) -> Error:
    if not message:
        message = _native.text(_lib().muster_strerror(rc))
    return _ERRORS.get(rc, InternalError)(message, rc)


def library_version() -> str:
    """The loaded libmuster-client's version, e.g. "0.1.0"."""
    return _native.text(_lib().muster_client_version())


# ---- values handed to the caller -----------------------------------------

@dataclass(frozen=True)
class Summary:
    """A job's counts: hosts expected, answered (of those expected), missing,
    unexpected answers, forged messages (failed the signature check, never
    yielded), and counts per status ("pass", "fail", "error", "timeout",
    "crashed", "cancelled", "rejected", "interrupted")."""
    expected: int
    answered: int
    missing: int
    unexpected: int
    forged: int
    counts: dict[str, int] = field(default_factory=dict)


def _ms_to_datetime(ms: int) -> Optional[_dt.datetime]:
    if ms == 0:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)


@dataclass(frozen=True)
class Result:
    """One host's verified answer to a job.  Text fields are "" when the
    agent sent none; host text is as the agent sent it (escape it for a
    page or terminal).  output: the module's output as text (bytes that
    are not UTF-8 replaced), output_bytes: the same, exact; data: the
    module's data map; json: the whole result as `muster run --json`
    prints it; started_at/finished_at: by the host's clock (UTC), with the
    raw milliseconds since the epoch in started_ms/finished_ms."""
    host: str
    job: str
    status: str
    summary: str
    reason: str
    output_bytes: bytes
    data: dict[str, Any]
    module: str
    agent_version: str
    started_ms: int
    finished_ms: int
    json: str

    @property
    def output(self) -> str:
        return self.output_bytes.decode("utf-8", errors="replace")

    @property
    def started_at(self) -> Optional[_dt.datetime]:
        return _ms_to_datetime(self.started_ms)

    @property
    def finished_at(self) -> Optional[_dt.datetime]:
        return _ms_to_datetime(self.finished_ms)

    @property
    def ok(self) -> bool:
        """The module ran and its check passed."""
        return self.status == "pass"


def _result(lib: ctypes.CDLL, r: int) -> Result:
    """Copy everything out of the library's result: it belongs to its job
    and dies with it; the Result must not."""
    n = ctypes.c_size_t(0)
    ptr = lib.muster_result_output(r, ctypes.byref(n))
    output = ctypes.string_at(ptr, n.value) if ptr and n.value else b""
    data_text = _native.text(lib.muster_result_data_json(r)) or "{}"
    data = _json.loads(data_text)
    return Result(
        host=_native.text(lib.muster_result_host(r)),
        job=_native.text(lib.muster_result_job(r)),
        status=_native.text(lib.muster_result_status(r)),
        summary=_native.text(lib.muster_result_summary(r)),
        reason=_native.text(lib.muster_result_reason(r)),
        output_bytes=output,
        data=data if isinstance(data, dict) else {},
        module=_native.text(lib.muster_result_module(r)),
        agent_version=_native.text(lib.muster_result_agent_version(r)),
        started_ms=int(lib.muster_result_started_at(r)),
        finished_ms=int(lib.muster_result_finished_at(r)),
        json=_native.text(lib.muster_result_json(r)),
    )


# ---- arguments ------------------------------------------------------------

def _utf8(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise InvalidArgument(f"{what} holds a NUL character")
    return value.encode("utf-8")


def _path(value: Optional[PathLike], what: str) -> Optional[bytes]:
    if value is None:
        return None
    raw = os.fsencode(value)
    if b"\0" in raw:
        raise InvalidArgument(f"{what} holds a NUL character")
    return raw


def _names(value: Optional[Names], what: str) -> list[bytes]:
    """A list of names; one str is one name (hosts="web1"), not its letters."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return [_utf8(v, what) for v in value]


def _ms(seconds: Optional[float], what: str) -> int:
    if seconds is None:
        return 0
    if seconds <= 0:
        raise InvalidArgument(f"{what} must be positive (seconds), got {seconds!r}")
    return max(1, round(seconds * 1000))


# ---- session and job ------------------------------------------------------

class Session:
    """One operator identity on one broker (connects at once).

    config: a muster.conf(5) path (None: $MUSTER_CONFIG, else
    ~/.config/muster/muster.conf); every other argument overrides that
    file's key.  persist: None as configured ([cli] persist), True through
    the per-user persist process, False direct.  Use it as a context
    manager, or call close(): it frees every job of the session first."""

    def __init__(self, config: Optional[PathLike] = None, *,
                 broker_uri: Optional[str] = None,
                 ca: Optional[PathLike] = None,
                 cert: Optional[PathLike] = None,
                 key: Optional[PathLike] = None,
                 operator_key: Optional[PathLike] = None,
                 topic_root: Optional[str] = None,
                 server_url: Optional[str] = None,
                 persist: Optional[bool] = None):
        self._lib = _lib()
        self._handle: Optional[int] = None
        self._jobs: weakref.WeakSet[Job] = weakref.WeakSet()
        s = _native.Settings()
        s.size = ctypes.sizeof(_native.Settings)
        s.config = _path(config, "config")
        s.broker_uri = None if broker_uri is None else _utf8(broker_uri, "broker_uri")
        s.ca = _path(ca, "ca")
        s.cert = _path(cert, "cert")
        s.key = _path(key, "key")
        s.operator_key = _path(operator_key, "operator_key")
        s.topic_root = None if topic_root is None else _utf8(topic_root, "topic_root")
        s.server_url = None if server_url is None else _utf8(server_url, "server_url")
        s.persist = -1 if persist is None else int(bool(persist))
        handle = _native.Session_p()
        errbuf = ctypes.create_string_buffer(1024)
        rc = self._lib.muster_session_open(ctypes.byref(s), ctypes.byref(handle),
                                           errbuf, len(errbuf))
        if rc != _native.OK:
            raise _error(rc, _native.text(errbuf.value))
        if not handle.value:
            raise InternalError("muster_session_open succeeded without a session",
                                _native.EINTERNAL)
        self._handle = handle.value

    # context manager
    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        """Free the session's jobs, then the session (idempotent)."""
        handle = getattr(self, "_handle", None)
        if handle is None:
            return
        for job in list(self._jobs):
            job.close()
        self._handle = None
        self._lib.muster_session_close(handle)

    def _live(self) -> int:
        if self._handle is None:
            raise InvalidArgument("the session is closed")
        return self._handle

    def _last_error(self, rc: int) -> Error:
        message = ""
        if self._handle is not None:
            message = _native.text(self._lib.muster_session_error(self._handle))
        return _error(rc, message)

    def _send(self, kind: int, module: Optional[str], args: Optional[Mapping[str, Any]],
              hosts: Optional[Names], groups: Optional[Names], all: bool,
              filters: Optional[Names], timeout: Optional[float],
              wait: Optional[float]) -> "Job":
        handle = self._live()
        host_b = _names(hosts, "host")
        group_b = _names(groups, "group")
        filter_b = _names(filters, "filter")
        spec = _native.JobSpec()
        spec.size = ctypes.sizeof(_native.JobSpec)
        spec.kind = kind
        spec.module = None if module is None else _utf8(module, "module")
        if args is not None:
            if not isinstance(args, Mapping):
                raise InvalidArgument("args must be a mapping (a JSON object)")
            try:
                spec.args_json = _json.dumps(dict(args), allow_nan=False).encode("utf-8")
            except (TypeError, ValueError) as e:
                raise InvalidArgument(f"args cannot be sent as JSON: {e}") from None
        # The arrays must outlive the call: kept in locals until it returns.
        host_arr = _native.string_array(host_b)
        group_arr = _native.string_array(group_b)
        filter_arr = _native.string_array(filter_b)
        spec.hosts, spec.nhosts = host_arr, len(host_b)
        spec.groups, spec.ngroups = group_arr, len(group_b)
        spec.filters, spec.nfilters = filter_arr, len(filter_b)
        spec.all = 1 if all else 0
        spec.timeout_ms = _ms(timeout, "timeout")
        spec.wait_ms = _ms(wait, "wait")
        out = _native.Job_p()
        rc = self._lib.muster_job_send(handle, ctypes.byref(spec), ctypes.byref(out))
        if rc != _native.OK:
            raise self._last_error(rc)
        if not out.value:
            raise InternalError("muster_job_send succeeded without a job",
                                _native.EINTERNAL)
        job = Job(self, out.value)
        self._jobs.add(job)
        return job

    def run(self, module: str, hosts: Optional[Names] = None,
            groups: Optional[Names] = None, all: bool = False,
            filters: Optional[Names] = None, args: Optional[Mapping[str, Any]] = None,
            timeout: Optional[float] = None, wait: Optional[float] = None) -> "Job":
        """Run module on the targets (hosts, groups, all, narrowed by fact
        filters such as "os.id=debian").  args: the module's arguments (a
        JSON object); timeout: seconds the host may run it (None: the
        agent's default); wait: seconds to wait for answers (None: the
        timeout plus a margin, as the CLI).  Returns once the broker has
        the job."""
        return self._send(_native.JOB_RUN, module, args, hosts, groups, all,
                          filters, timeout, wait)

    def ping(self, hosts: Optional[Names] = None, groups: Optional[Names] = None,
             all: bool = False, filters: Optional[Names] = None,
             wait: Optional[float] = None) -> "Job":
        """Ask the targets to answer (each answers pass)."""
        return self._send(_native.JOB_PING, None, None, hosts, groups, all,
                          filters, None, wait)

    def version(self, hosts: Optional[Names] = None, groups: Optional[Names] = None,
                all: bool = False, filters: Optional[Names] = None,
                wait: Optional[float] = None) -> "Job":
        """Ask the targets their versions: each Result's data holds
        version, runner_version, abi and channel."""
        return self._send(_native.JOB_VERSION, None, None, hosts, groups, all,
                          filters, None, wait)


class Job:
    """A sent job.  Iterate over it for the verified results as they arrive
    (a generator: each result is yielded once).  Made by Session.run(),
    .ping() and .version(); close() frees it (the session's close() does
    too)."""

    def __init__(self, session: Session, handle: int):
        self._session = session
        self._lib = session._lib
        self._handle: Optional[int] = handle
        self._finished = False
        self._timed_out = False
        self.ids: list[str] = []
        i = 0
        while True:
            raw = self._lib.muster_job_id(handle, i)
            if raw is None:
                break
            self.ids.append(_native.text(raw))
            i += 1

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Free the job (idempotent); its Results stay valid."""
        handle = getattr(self, "_handle", None)
        if handle is None:
            return
        self._handle = None
        self._session._jobs.discard(self)
        self._lib.muster_job_free(handle)

    def _live(self) -> int:
        if self._handle is None:
            raise InvalidArgument("the job is closed (or its session is)")
        return self._handle

    @property
    def finished(self) -> bool:
        """Every expected host answered, or the wait ended."""
        return self._finished

    @property
    def timed_out(self) -> bool:
        """The wait ended with expected hosts missing."""
        return self._timed_out

    def results(self, raise_on_timeout: bool = True) -> Iterator[Result]:
        """The verified results as they arrive.  When the wait ends with
        expected hosts missing: JobTimeout (naming them) after the last
        result, or a plain end with raise_on_timeout=False (then see
        missing() and timed_out)."""
        while not self._finished:
            handle = self._live()
            out = _native.Result_p()
            rc = self._lib.muster_job_next(handle, ctypes.byref(out))
            if rc == _native.OK and out.value:
                yield _result(self._lib, out.value)
                continue
            if rc == _native.OK:
                raise InternalError("muster_job_next gave no result",
                                    _native.EINTERNAL)
            if rc == _native.DONE:
                self._finished = True
                return
            if rc == _native.ETIMEOUT:
                self._finished = self._timed_out = True
                break
            raise self._session._last_error(rc)
        if self._timed_out and raise_on_timeout:
            missing = self.missing()
            raise JobTimeout("no answer from " + (", ".join(missing) or "(none)"),
                             missing, self.summary())

    def __iter__(self) -> Iterator[Result]:
        return self.results()

    def summary(self) -> Summary:
        """The counts so far (final once iteration has ended)."""
        s = _native.Summary()
        s.size = ctypes.sizeof(_native.Summary)
        rc = self._lib.muster_job_summary(self._live(), ctypes.byref(s))
        if rc != _native.OK:
            raise self._session._last_error(rc)
        return Summary(expected=s.expected, answered=s.answered, missing=s.missing,
                       unexpected=s.unexpected, forged=s.forged,
                       counts={name: getattr(s, name) for name in _native.SUMMARY_COUNTS})

    def missing(self) -> list[str]:
        """The expected hosts that have not answered (sorted)."""
        handle = self._live()
        out: list[str] = []
        i = 0
        while True:
            raw = self._lib.muster_job_missing(handle, i)
            if raw is None:
                return out
            out.append(_native.text(raw))
            i += 1


# ---- one-call helpers -----------------------------------------------------

def run(module: str, hosts: Optional[Names] = None, groups: Optional[Names] = None,
        all: bool = False, filters: Optional[Names] = None,
        args: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None,
        wait: Optional[float] = None, *, config: Optional[PathLike] = None,
        persist: Optional[bool] = None) -> Iterator[Result]:
    """Open a session from the CLI's configuration, run module, and yield
    each verified result; JobTimeout at the end if a host did not answer.
    The session is closed when the generator ends or is dropped."""
    with Session(config, persist=persist) as s:
        with s.run(module, hosts=hosts, groups=groups, all=all, filters=filters,
                   args=args, timeout=timeout, wait=wait) as job:
            yield from job


def ping(hosts: Optional[Names] = None, groups: Optional[Names] = None,
         all: bool = False, filters: Optional[Names] = None,
         wait: Optional[float] = None, *, config: Optional[PathLike] = None,
         persist: Optional[bool] = None) -> Iterator[Result]:
    """As run(), for a ping."""
    with Session(config, persist=persist) as s:
        with s.ping(hosts=hosts, groups=groups, all=all, filters=filters,
                    wait=wait) as job:
            yield from job


def version(hosts: Optional[Names] = None, groups: Optional[Names] = None,
            all: bool = False, filters: Optional[Names] = None,
            wait: Optional[float] = None, *, config: Optional[PathLike] = None,
            persist: Optional[bool] = None) -> Iterator[Result]:
    """As run(), for a version query."""
    with Session(config, persist=persist) as s:
        with s.version(hosts=hosts, groups=groups, all=all, filters=filters,
                       wait=wait) as job:
            yield from job
