# SPDX-License-Identifier: Apache-2.0
"""The ctypes declarations of libmuster-client (<muster/client.h>).

Private to the package: nothing here is handed to callers.  Each struct
mirrors the header field for field; the header's `size` first field lets
the library tell which version of a struct it was given, so the values set
here are the sizes of these mirrors.

Which library: $MUSTER_CLIENT_LIB (a path, for a build tree's copy), else
the SONAME libmuster-client.so.0 through the dynamic loader, so that a
binding only ever loads the ABI it was written for.
"""
from __future__ import annotations

import ctypes
import functools
import os
from ctypes import (POINTER, c_char_p, c_int, c_size_t, c_uint64, c_void_p)

SONAME = "libmuster-client.so.0"
ENV_LIB = "MUSTER_CLIENT_LIB"

# enum muster_rc
OK = 0
DONE = 1
ETIMEOUT = 2
ECONFIG = 3
EKEY = 4
ECONNECT = 5
ELOST = 6
EINVAL = 7
EREFUSED = 8
ENOMEM = 9
EINTERNAL = 10

# enum muster_job_kind
JOB_RUN = 0
JOB_PING = 1
JOB_VERSION = 2


class Settings(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("config", c_char_p),
        ("broker_uri", c_char_p),
        ("ca", c_char_p),
        ("cert", c_char_p),
        ("key", c_char_p),
        ("operator_key", c_char_p),
        ("topic_root", c_char_p),
        ("server_url", c_char_p),
        ("persist", c_int),
    ]


class JobSpec(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("kind", c_int),
        ("module", c_char_p),
        ("args_json", c_char_p),
        ("hosts", POINTER(c_char_p)),
        ("nhosts", c_size_t),
        ("groups", POINTER(c_char_p)),
        ("ngroups", c_size_t),
        ("all", c_int),
        ("filters", POINTER(c_char_p)),
        ("nfilters", c_size_t),
        ("timeout_ms", c_uint64),
        ("wait_ms", c_uint64),
    ]


SUMMARY_COUNTS = ("pass", "fail", "error", "timeout", "crashed", "cancelled",
                  "rejected", "interrupted")


class Summary(ctypes.Structure):
    _fields_ = [(name, c_size_t) for name in
                ("size", "expected", "answered", "missing", "unexpected",
                 "forged") + SUMMARY_COUNTS]


# Opaque handles: pointers the library owns.
Session_p = c_void_p
Job_p = c_void_p
Result_p = c_void_p

# name: (restype, argtypes)
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "muster_strerror": (c_char_p, [c_int]),
    "muster_client_version": (c_char_p, []),
    "muster_session_open": (c_int, [POINTER(Settings), POINTER(Session_p),
                                    c_char_p, c_size_t]),
    "muster_session_close": (None, [Session_p]),
    "muster_session_error": (c_char_p, [Session_p]),
    "muster_job_send": (c_int, [Session_p, POINTER(JobSpec), POINTER(Job_p)]),
    "muster_job_free": (None, [Job_p]),
    "muster_job_id": (c_char_p, [Job_p, c_size_t]),
    "muster_job_next": (c_int, [Job_p, POINTER(Result_p)]),
    "muster_job_summary": (c_int, [Job_p, POINTER(Summary)]),
    "muster_job_missing": (c_char_p, [Job_p, c_size_t]),
    "muster_result_host": (c_char_p, [Result_p]),
    "muster_result_job": (c_char_p, [Result_p]),
    "muster_result_status": (c_char_p, [Result_p]),
    "muster_result_summary": (c_char_p, [Result_p]),
    "muster_result_reason": (c_char_p, [Result_p]),
    # c_void_p, not c_char_p: the output may hold NUL bytes; its length
    # comes back through the second argument.
    "muster_result_output": (c_void_p, [Result_p, POINTER(c_size_t)]),
    "muster_result_data_json": (c_char_p, [Result_p]),
    "muster_result_json": (c_char_p, [Result_p]),
    "muster_result_module": (c_char_p, [Result_p]),
    "muster_result_agent_version": (c_char_p, [Result_p]),
    "muster_result_started_at": (c_uint64, [Result_p]),
    "muster_result_finished_at": (c_uint64, [Result_p]),
}


class LibraryMissing(OSError):
    """The shared library could not be loaded (raised as muster.LibraryError)."""


@functools.cache
def lib() -> ctypes.CDLL:
    """The loaded library with every function's types declared; loaded on
    first use, so that `import muster` works (and says what is wrong only
    when called) on a machine without libmuster-client0."""
    path = os.environ.get(ENV_LIB) or SONAME
    try:
        handle = ctypes.CDLL(path)
    except OSError as e:
        raise LibraryMissing(f"cannot load {path}: {e}") from e
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            fn = getattr(handle, name)
        except AttributeError as e:
            raise LibraryMissing(f"{path} has no {name}: not libmuster-client "
                                 f"ABI 0") from e
        fn.restype = restype
        fn.argtypes = argtypes
    return handle


def text(raw: bytes | None) -> str:
    """A library string as str: host text is passed on as the agent sent it,
    so bytes that are not UTF-8 are replaced rather than raised on."""
    if raw is None:
        return ""
    return raw.decode("utf-8", errors="replace")


def string_array(items: list[bytes]) -> ctypes.Array[c_char_p] | None:
    """A const char *const[] for the spec (NULL when empty)."""
    if not items:
        return None
    return (c_char_p * len(items))(*items)
