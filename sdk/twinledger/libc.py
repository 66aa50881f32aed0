"""The C library's calls Python's os module lacks (syncfs, prctl), through ctypes."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def libc() -> ctypes.CDLL:
    # The running interpreter's own symbols include libc's. ctypes.util.find_library("c") would find the same
    # library by running ldconfig and a compiler in subprocesses: ~60 ms of every process's start-up.
    return ctypes.CDLL(None, use_errno=True)
