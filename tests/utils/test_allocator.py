"""The freed-memory setting: in force on Linux/glibc by default, off when the user says so."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import ctypes, json, sys
from brainsegfounder.utils.allocator import keep_freed_memory
first = keep_freed_memory()
# glibc's mallinfo2 has no field for the thresholds; probe them: a 64 MiB block freed and taken
# again is served from the heap (same address) only when the mmap threshold was raised.
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_long]
block = libc.malloc(64 << 20)
in_heap = block < libc.sbrk(0)  # mmap blocks lie far above the brk heap
libc.free(block)
print(json.dumps({"applied": first, "again": keep_freed_memory(), "in_heap": bool(in_heap)}))
"""


def _probe(value: str | None) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if k != "BRAINSEGFOUNDER_KEEP_FREED_MEMORY"}
    env["PYTHONPATH"] = str(ROOT)
    if value is not None:
        env["BRAINSEGFOUNDER_KEEP_FREED_MEMORY"] = value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_large_blocks_come_from_the_heap_by_default_and_from_mmap_when_switched_off():
    on = _probe(None)
    assert on == {"applied": True, "again": True, "in_heap": True}
    off = _probe("0")
    assert off == {"applied": False, "again": False, "in_heap": False}
