"""A process's ``vmos`` and ``vmo_refs`` entries: the VMOs, handles and mappings they
name."""

from __future__ import annotations

from mxmem.model import (
    Handle,
    Mapping,
    ObjType,
    Rights,
    Vmo,
)
from mxmem.sources.capture.memgraph.reader import (
    NOT_RIGHTS,
    U64_BITS,
    VMO_FIELDS,
    RawProcess,
    Reader,
    Where,
    entry_fields,
    read_rights,
)


def read_vmos(
    reader: Reader,
    rec: dict[str, object],
    place: Where,
    process: RawProcess,
    raw_vmos: dict[object, Vmo],
    rights_of: dict[tuple[object, ...], int],
    mapping_of: dict[int, Mapping],
) -> None:
    """The process's ``vmos`` and ``vmo_refs``: new VMOs into ``raw_vmos``, its VMO
    handles and (placeholder) mappings into ``process``. ``rights_of`` caches the rights
    of each list of names already seen (only lists of known rights are in it);
    ``mapping_of``, the one placeholder mapping of each VMO, shared by every process that
    maps it (immutable)."""
    # (places formatted only for an error: see Place)
    entries = rec.get("vmos")
    if type(entries) is not list:
        entries = reader.list_(entries, f"{place}.vmos")
    refs = rec.get("vmo_refs")
    if type(refs) is not list:
        refs = reader.list_(refs, f"{place}.vmo_refs")
    if len(entries) != len(refs):
        reader.fail(f"{place}.vmo_refs", f"{len(refs)} refs for {len(entries)} vmos entries")
    handles = process.handles
    mappings = process.mappings
    vmo_type = ObjType.VMO
    members = Rights.__members__
    for n, (entry, ref) in enumerate(zip(entries, refs, strict=True)):
        # A large memgraph has a million entries: a well-formed one takes this fast way
        # (these checks are the checked way's, inline: this is the reader's hottest
        # loop), which builds no error places; anything else goes the checked way below,
        # which names the first problem.
        if type(entry) is dict and type(ref) is dict:
            try:
                koid, size, parent, children, mapped, share, committed, name = entry_fields(entry)
            except KeyError:
                koid = None  # the checked way says which
            via = ref.get("via")
            if (
                type(koid) is int
                and type(size) is int
                and type(parent) is int
                and type(children) is int
                and type(mapped) is int
                and type(share) is int
                and type(committed) is int
                and type(name) is str
                # All seven in [0, U64_LIMIT): their OR is, and a negative one makes it
                # negative (shifted, -1).
                and not (koid | size | parent | children | mapped | share | committed) >> U64_BITS
                and ref.get("vmo_koid") == koid
                and type(ref["vmo_koid"]) is int
                and type(via) is list
                and len(via) == 1
            ):
                kind = via[0]
                rights: int | None = 0
                if kind == "HANDLE":
                    rights = None
                    names = ref.get("handle_rights", [])
                    if type(names) is list:
                        listed = tuple(names)
                        try:
                            rights = rights_of.get(listed)
                        except TypeError:  # an array or object among them
                            listed = (None,)
                        if rights is None and all(
                            type(r) is str and r in members and r not in NOT_RIGHTS
                            for r in listed
                        ):
                            rights = 0
                            for r in listed:
                                rights |= Rights[r]
                            rights_of[listed] = rights
                elif kind != "MAPPING":
                    rights = None
                if rights is not None:
                    if koid:
                        vmo = raw_vmos.get(koid)
                        if vmo is None:  # (a VMO listed by an earlier entry is built once)
                            vmo = raw_vmos[koid] = Vmo(
                                koid, name, size, committed, parent or None, children,
                                mapped, share, False, False,
                            )  # fmt: skip
                        if kind == "HANDLE":
                            handles.append(Handle(len(handles) + 1, koid, vmo_type, rights))
                        else:
                            mapping = mapping_of.get(koid)
                            if mapping is None:
                                mapping = mapping_of[koid] = Mapping(0, 0, 0, koid, 0, 0, vmo.name)
                            mappings.append(mapping)
                        continue
                    # memgraph's "no parent" is 0; a kernel-only VMO (koid 0) is told
                    # apart by its figures.
                    vmo = Vmo(0, name, size, committed, parent or None, children, mapped,
                              share, False, True)  # fmt: skip
                    _add_kernel_only(process, raw_vmos, vmo, kind, rights)
                    continue
        where = f"{place}.vmos[{n}]"
        entry = reader.dict_(entry, where)
        ints = {f: reader.int_(entry.get(f), f"{where}.{f}") for f in VMO_FIELDS}
        vmo = Vmo(
            koid=ints["koid"],
            name=reader.str_(entry.get("name"), f"{where}.name"),
            size_bytes=ints["size_bytes"],
            committed_bytes=ints["committed_bytes"],
            parent_koid=ints["parent_koid"] or None,  # memgraph's "no parent" is 0
            num_children=ints["num_children"],
            num_mappings=ints["num_mappings"],
            share_count=ints["share_count"],
            kernel_only=ints["koid"] == 0,
        )
        ref_place = f"{place}.vmo_refs[{n}]"
        ref = reader.dict_(ref, ref_place)
        if reader.int_(ref.get("vmo_koid"), f"{ref_place}.vmo_koid") != vmo.koid:
            reader.fail(f"{ref_place}.vmo_koid", f"does not match vmos[{n}].koid {vmo.koid}")
        via = reader.list_(ref.get("via"), f"{ref_place}.via", 1)
        if via[0] == "HANDLE":
            kind = "HANDLE"
            rights = read_rights(reader, ref.get("handle_rights", []), f"{ref_place}.handle_rights")
        elif via[0] == "MAPPING":
            kind, rights = "MAPPING", 0
        else:
            reader.fail(f"{ref_place}.via[0]", 'expected "HANDLE" or "MAPPING"')
        if not vmo.koid:
            _add_kernel_only(process, raw_vmos, vmo, kind, rights)
            continue
        vmo = raw_vmos.setdefault(vmo.koid, vmo)
        if kind == "HANDLE":
            handles.append(Handle(len(handles) + 1, vmo.koid, vmo_type, rights))
        else:
            mappings.append(Mapping(0, 0, 0, vmo.koid, 0, 0, vmo.name))


def _add_kernel_only(
    process: RawProcess, raw_vmos: dict[object, Vmo], vmo: Vmo, kind: str, rights: int
) -> None:
    """A reference to a kernel-only VMO (koid 0; the same figures are the same VMO), whose
    koid is given once the whole file is read: a handle or mapping with koid 0 for now,
    and where it is in ``process.later``."""
    vmo = raw_vmos.setdefault(vmo, vmo)
    if kind == "HANDLE":
        process.later.append((True, len(process.handles), vmo))
        process.handles.append(Handle(len(process.handles) + 1, 0, ObjType.VMO, rights))
    else:
        process.later.append((False, len(process.mappings), vmo))
        process.mappings.append(Mapping(0, 0, 0, 0, 0, 0, vmo.name))


