"""A real CLONE_VM pair (two processes, one address space) for the host tests."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

_SOURCE = """\
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int child(void *arg) { (void)arg; for (;;) pause(); return 0; }
int main(void) {
  char *stack = malloc(1 << 16);
  char *heap = HEAP ? malloc(HEAP) : NULL;
  if (heap) memset(heap, 3, HEAP);
  int pid = clone(child, stack + (1 << 16), CLONE_VM | SIGCHLD, NULL);
  printf("%d %d %d\\n", getpid(), pid, heap ? heap[12345] : 0); fflush(stdout);
  for (;;) pause();
}
"""


@contextlib.contextmanager
def clone_vm_pair(workdir: Path, heap_bytes: int = 0) -> Iterator[tuple[int, int]]:
    """Build and start a process that clones a CLONE_VM child (after touching
    ``heap_bytes`` of heap), and yield the two pids, lower first; both are killed on
    exit. Skips the test without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a CLONE_VM child")
    source = workdir / "clonevm.c"
    source.write_text(_SOURCE)
    binary = workdir / "clonevm"
    subprocess.run([cc, "-O", f"-DHEAP={heap_bytes}", "-o", str(binary), str(source)], check=True)
    proc = subprocess.Popen(
        [str(binary)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        assert ready, "child did not report ready"
        line = proc.stdout.readline()
        assert line, f"child exited with {proc.wait()}"
        first, second, _ = (int(w) for w in line.split())
        low, high = sorted((first, second))
        yield low, high
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
