#!/usr/bin/env python3
"""scripts/gpu/unpack_debs.py: unpack Debian packages (.deb) into a prefix, as `dpkg -x` does,
with the Python standard library only.

The lent GPU machine may not be Debian and may have no dpkg, but it has python3. A .deb is an `ar`
archive whose member data.tar.{xz,gz,bz2} (or plain data.tar) holds the files; this extracts that
member's files, links included, under PREFIX. (zstd-compressed members, used by some Ubuntu
releases, are not readable by the standard library before Python 3.14: such a package is named
and skipped, and the exit status is 1.)

    python3 scripts/gpu/unpack_debs.py PREFIX .gpu-deps/*.deb
"""
from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

AR_MAGIC = b"!<arch>\n"
HEADER = 60  # name 16, mtime 12, uid 6, gid 6, mode 8, size 10, magic 2


def ar_members(blob: bytes):
    """(name, bytes) of each member of an ar archive."""
    if not blob.startswith(AR_MAGIC):
        raise ValueError("not an ar archive (no !<arch> magic)")
    pos = len(AR_MAGIC)
    while pos + HEADER <= len(blob):
        head = blob[pos:pos + HEADER]
        if head[58:60] != b"`\n":
            raise ValueError(f"bad ar member header at byte {pos}")
        name = head[0:16].decode("ascii").strip().rstrip("/")
        size = int(head[48:58].decode("ascii").strip())
        start = pos + HEADER
        yield name, blob[start:start + size]
        pos = start + size + (size % 2)  # members are padded to an even offset


def tar_mode(name: str) -> str:
    for suffix, mode in ((".tar.xz", "r:xz"), (".tar.gz", "r:gz"), (".tar.bz2", "r:bz2"),
                         (".tar", "r:")):
        if name.endswith(suffix):
            return mode
    raise ValueError(f"member {name}: compression not readable by Python's tarfile")


def unpack(deb: Path, prefix: Path) -> int:
    """Extracts one package's files under prefix; returns the number of entries."""
    for name, data in ar_members(deb.read_bytes()):
        if not name.startswith("data.tar"):
            continue
        with tarfile.open(fileobj=io.BytesIO(data), mode=tar_mode(name)) as tar:
            members = tar.getmembers()
            # Debian's own packages (fetched by prepare.sh) are trusted as dpkg -x trusts them:
            # absolute symlinks stay as they are.
            if hasattr(tarfile, "fully_trusted_filter"):
                tar.extractall(prefix, members=members, filter="fully_trusted")
            else:
                tar.extractall(prefix, members=members)
            return len(members)
    raise ValueError("no data.tar member")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    prefix = Path(argv[0])
    prefix.mkdir(parents=True, exist_ok=True)
    failed = 0
    for deb in map(Path, argv[1:]):
        try:
            unpack(deb, prefix)
        except (OSError, ValueError, tarfile.TarError) as e:
            print(f"unpack_debs.py: {deb}: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
