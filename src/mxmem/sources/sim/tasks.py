"""Tasks of the simulated kernel: jobs, processes and threads, and the other objects
(channels, events, ports...) processes hold.

A process starts NEW with an empty address space, runs, and when killed stays in its job
as DEAD (reporting zero memory): its threads die, its handles close and its address
space goes. Thread state changes feed the CPU model (``cpu.py``).
"""

from __future__ import annotations

from mxmem.errors import KernelError
from mxmem.model import ObjType, ProcessState, Rights, ThreadState
from mxmem.sources.sim.cpu import shootdown_syscall, syscall
from mxmem.sources.sim.memory import HEAP_COST
from mxmem.sources.sim.objects import (
    USER_ASPACE_BASE,
    USER_ASPACE_SIZE,
    KObject,
    SimAspace,
    SimJob,
    SimProcess,
    SimThread,
    SimVmar,
)
from mxmem.sources.sim.pmm import PageState
from mxmem.sources.sim.vmars import AddressSpaceOps

__all__ = ["TaskOps"]


class TaskOps(AddressSpaceOps):
    """The job, process, thread and other-object operations."""

    @syscall
    def job_create(self, parent: SimJob | None, name: str, *, koid: int | None = None) -> SimJob:
        self._charge("job", koid=koid)
        job = SimJob(self._koid(koid), parent, name)
        if parent is not None:
            parent.jobs.append(job)
        return job

    @syscall
    def process_create(self, job: SimJob, name: str, *, koid: int | None = None) -> SimProcess:
        """A new process (state NEW) with an empty address space and root VMAR."""
        self._reserve("process", "aspace", "vmar", extra_pages=1, koid=koid)
        for key in ("process", "aspace", "vmar"):
            self._heap_alloc(HEAP_COST[key])
        process = SimProcess(self._koid(koid), job, name)
        aspace = SimAspace(
            f"proc:{process.koid}", USER_ASPACE_BASE, USER_ASPACE_SIZE, is_kernel=False
        )
        aspace.root = SimVmar(
            self._koid(None), aspace, None, USER_ASPACE_BASE, USER_ASPACE_SIZE, "root"
        )
        self.pmm.alloc(PageState.MMU, 1)  # the top-level page table
        aspace.mmu_pages = 1
        process.aspace = aspace
        job.processes.append(process)
        return process

    @syscall
    def process_start(self, process: SimProcess, thread: SimThread | None = None) -> None:
        if process.state is not ProcessState.NEW:
            raise KernelError("ERR_BAD_STATE", f"process {process.koid} already started")
        process.state = ProcessState.RUNNING
        if thread is not None:
            self.thread_start(thread)

    @shootdown_syscall
    def process_kill(self, process: SimProcess) -> None:
        """Kill a process: its threads die, its handles close, its address space goes.

        The process stays in its job as DEAD (reporting zero memory) until destroyed.
        """
        if process.state is ProcessState.DEAD:
            return
        for thread in process.threads:
            self.sched.thread_state(thread.koid, thread.state, ThreadState.DEAD)
            thread.state = ThreadState.DEAD
        for value in list(process.handles):
            self.handle_close(process, value)
        aspace = process.aspace
        if aspace is not None and aspace.root is not None:
            self._destroy_vmar(aspace.root)
            self.pmm.release(PageState.MMU, aspace.mmu_pages)
            aspace.mmu_pages = 0
            self._heap_free(HEAP_COST["aspace"])
            process.aspace = None
        process.state = ProcessState.DEAD

    @syscall
    def thread_create(
        self, process: SimProcess, name: str, *, koid: int | None = None
    ) -> SimThread:
        if process.state is ProcessState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"process {process.koid} is dead")
        self._charge("thread", koid=koid)
        thread = SimThread(self._koid(koid), process, name)
        process.threads.append(thread)
        return thread

    @syscall
    def thread_start(self, thread: SimThread) -> None:
        if thread.state is not ThreadState.NEW:
            raise KernelError("ERR_BAD_STATE", f"thread {thread.koid} already started")
        self.sched.thread_state(thread.koid, thread.state, ThreadState.RUNNING)
        thread.state = ThreadState.RUNNING

    @syscall
    def thread_set_state(self, thread: SimThread, state: ThreadState) -> None:
        """Move a thread to a state (blocked in a wait, suspended, in an exception...)."""
        if thread.state in (ThreadState.DEAD, ThreadState.NEW) and state is not ThreadState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"thread {thread.koid} is {thread.state.name}")
        self.sched.thread_state(thread.koid, thread.state, state)
        thread.state = state

    # ----------------------------------------------------------------- other objects

    @syscall
    def object_create(
        self, owner: SimProcess, type: ObjType, *, koid: int | None = None
    ) -> KObject:
        """An event, port, socket, timer or fifo held by one handle in ``owner``."""
        self._check_owner(owner)
        self._reserve("other", "handle", koid=koid)
        self._heap_alloc(HEAP_COST["other"])
        obj = KObject(self._koid(koid))
        obj.type = type
        self.handle_grant(owner, obj, Rights.DUPLICATE | Rights.TRANSFER | Rights.READ)
        return obj

    @syscall
    def channel_create(self, a: SimProcess, b: SimProcess | None = None) -> tuple[KObject, KObject]:
        """A channel: one endpoint in ``a``, the other in ``b`` (default ``a``)."""
        self._check_owner(b)
        self._reserve("other", "handle", "other", "handle")
        return (self.object_create(a, ObjType.CHANNEL), self.object_create(b or a, ObjType.CHANNEL))
