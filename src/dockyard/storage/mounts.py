"""Which kind of filesystem a folder is on, from /proc/self/mountinfo (Linux).

The filesystem driver works on NFS (it fsyncs before publishing, publishes by rename within
one directory, which NFS servers do atomically, and takes no locks), but SQLite does not:
its locks are unreliable over NFS, so the embedded database must stay on a local disk.
"""

from __future__ import annotations

import os

NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "glusterfs", "ceph"})


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of each line of a mountinfo file."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        # Mount points escape spaces and the like as octal (\040).
        point = fields[4].encode().decode("unicode_escape")
        mounts.append((point, right.split()[0]))
    return mounts


def filesystem_type(path: str, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding ``path`` (the longest mount point above it), or
    None where mountinfo cannot be read."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
        except OSError:
            return None
    real = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for point, fstype in parse_mountinfo(mountinfo):
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), fstype)
    return best[1] if best else None


def is_network_filesystem(path: str, mountinfo: str | None = None) -> bool:
    return filesystem_type(path, mountinfo) in NETWORK_FILESYSTEMS
