"""Jobs on Linux: the cgroup tree of the memory controller, or the process tree.

Which hierarchy (from the mounts in ``/proc/self/mountinfo``):

1. cgroup v2 if its root's ``cgroup.controllers`` lists ``memory`` (a pure v2 system,
   mounted at ``/sys/fs/cgroup``);
2. else the v1 ``memory`` hierarchy (a v1 system, or a *hybrid* one where cgroup2 is
   mounted at ``/sys/fs/cgroup/unified`` with only e.g. ``hugetlb``: a reader that only
   understands v2 would find no memory data there);
3. else, when neither is mounted or readable, the process tree: the job of process P
   holds P's children (its koid is P's pid, its name P's name) and the root job (koid
   0) holds the processes whose parent is not listed (init and kthreadd).

A cgroup job's koid is its directory's inode (stable while the cgroup exists, and what
``/proc/kpagecgroup`` reports for a page's memcg), its name the directory name; the
hierarchy root is named ``root``. Child jobs are ordered by inode, which kernfs hands
out increasingly, so the order is the creation order Magenta's walk uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import NamedTuple

from mxmem.model import Job
from mxmem.sources.linux.procfs import Mount
from mxmem.sources.linux.reader import ProcReader, Unreadable

__all__ = [
    "CgroupNode",
    "Hierarchy",
    "cgroup_jobs",
    "choose_hierarchy",
    "find_hierarchy",
    "nearest_cgroup",
    "process_tree_jobs",
    "walk_cgroups",
]


class Hierarchy(NamedTuple):
    version: int  # 1 or 2
    mount_point: str  # in the inspected system, e.g. "/sys/fs/cgroup/memory"
    charge_file: str  # the cgroup's own memory charge, in bytes


def choose_hierarchy(mounts: list[Mount], v2_controllers: Mapping[str, str]) -> Hierarchy | None:
    """The hierarchy that carries the memory controller. ``v2_controllers`` maps each
    cgroup2 mount point to the text of its ``cgroup.controllers`` (missing if unreadable).
    Mounts of a hierarchy's root (mountinfo root ``/``) are preferred over bind mounts of
    a subtree."""
    ordered = sorted(mounts, key=lambda m: m.root != "/")
    for m in ordered:
        if m.fstype == "cgroup2" and "memory" in v2_controllers.get(m.mount_point, "").split():
            return Hierarchy(2, m.mount_point, "memory.current")
    for m in ordered:
        if m.fstype == "cgroup" and "memory" in m.super_options:
            return Hierarchy(1, m.mount_point, "memory.usage_in_bytes")
    return None


def find_hierarchy(reader: ProcReader, mounts: list[Mount]) -> Hierarchy | None:
    """:func:`choose_hierarchy` over the live mounts, reading each cgroup2 root's
    controllers; ``None`` if no memory hierarchy is mounted or its root is unreadable."""
    controllers: dict[str, str] = {}
    for m in mounts:
        if m.fstype == "cgroup2":
            with contextlib.suppress(Unreadable):
                controllers[m.mount_point] = reader.read(
                    reader.host_path(m.mount_point) + "/cgroup.controllers"
                )
    hierarchy = choose_hierarchy(mounts, controllers)
    if hierarchy is None or not reader.exists(reader.host_path(hierarchy.mount_point)):
        return None
    return hierarchy


class CgroupNode(NamedTuple):
    path: str  # as /proc/PID/cgroup writes it: "/" for the root, "/a/b" below
    inode: int
    parent: str | None
    name: str


def walk_cgroups(reader: ProcReader, hierarchy: Hierarchy) -> dict[str, CgroupNode]:
    """Every cgroup directory of the hierarchy, parents before children, siblings in
    inode order. A directory removed during the walk is left out."""
    top = reader.host_path(hierarchy.mount_point)
    nodes = {"/": CgroupNode("/", reader.inode(top), None, "root")}
    stack = ["/"]
    while stack:
        path = stack.pop()
        try:
            children = reader.subdirs(top + (path if path != "/" else ""))
        except Unreadable:
            continue
        children.sort(key=lambda c: c[1])
        prefix = path if path != "/" else ""
        for name, inode in children:
            child = f"{prefix}/{name}"
            nodes[child] = CgroupNode(child, inode, path, name)
        stack.extend(f"{prefix}/{name}" for name, _ in reversed(children))
    return nodes


def nearest_cgroup(nodes: Mapping[str, CgroupNode], path: str | None) -> str:
    """``path`` if it was walked, else its nearest walked ancestor (a cgroup created
    after the walk, or one outside our cgroup namespace's view), else the root."""
    while path and path not in nodes:
        path = path.rsplit("/", 1)[0] or "/"
    return path if path else "/"


def cgroup_jobs(
    nodes: Mapping[str, CgroupNode],
    placement: Mapping[int, str],
    charges: Mapping[str, int],
) -> tuple[int, dict[int, Job]]:
    """The root job's koid and every job: one per cgroup, with the processes
    ``placement`` puts there (pid → cgroup path, already resolved by
    :func:`nearest_cgroup`) in pid order and ``charges`` (cgroup path → bytes) as
    :attr:`Job.charge_bytes`."""
    members: dict[str, list[int]] = {path: [] for path in nodes}
    for pid, path in placement.items():
        members[path].append(pid)
    children: dict[str, list[int]] = {path: [] for path in nodes}
    for node in nodes.values():
        if node.parent is not None:
            children[node.parent].append(node.inode)
    jobs: dict[int, Job] = {}
    for path, node in nodes.items():
        jobs[node.inode] = Job(
            koid=node.inode,
            parent_koid=None if node.parent is None else nodes[node.parent].inode,
            name=node.name,
            process_koids=tuple(sorted(members[path])),
            child_koids=tuple(children[path]),
            charge_bytes=charges.get(path),
        )
    return nodes["/"].inode, jobs


#: The root job's koid in process-tree mode (pid 0 is the parent of init and kthreadd).
PROCESS_TREE_ROOT = 0


def process_tree_jobs(
    parents: Mapping[int, int], names: Mapping[int, str]
) -> tuple[int, dict[int, Job], dict[int, int]]:
    """Jobs from the process tree: the root koid, the jobs, and each process's job koid.

    ``parents`` maps every listed pid to its parent pid. A process whose parent is
    listed belongs to the parent's job; the others belong to the root job.
    """
    job_of = {pid: ppid if ppid in parents else PROCESS_TREE_ROOT for pid, ppid in parents.items()}
    members: dict[int, list[int]] = {PROCESS_TREE_ROOT: []}
    for pid in sorted(parents):
        members.setdefault(job_of[pid], []).append(pid)
    jobs: dict[int, Job] = {}
    for koid, pids in members.items():
        jobs[koid] = Job(
            koid=koid,
            parent_koid=None if koid == PROCESS_TREE_ROOT else job_of[koid],
            name="root" if koid == PROCESS_TREE_ROOT else names.get(koid, str(koid)),
            process_koids=tuple(pids),
            child_koids=tuple(pid for pid in pids if pid in members),
        )
    return PROCESS_TREE_ROOT, jobs, job_of
