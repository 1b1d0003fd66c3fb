"""Which filesystem a folder is on: the check that keeps SQLite off NFS."""

from __future__ import annotations

from pathlib import Path

from dockyard.storage.mounts import filesystem_type, is_network_filesystem, parse_mountinfo

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/registry rw,relatime shared:20 - nfs4 filer:/export/registry rw,vers=4.2
41 22 0:36 / /srv/registry-local rw,relatime shared:21 - xfs /dev/sdb1 rw
42 40 0:37 / /srv/registry/scratch rw,relatime shared:22 - tmpfs tmpfs rw
43 22 0:38 / /mnt/with\\040space rw - cifs //nas/share rw
"""


def test_mountinfo_lines_are_parsed() -> None:
    assert parse_mountinfo(MOUNTINFO) == [
        ("/", "ext4"),
        ("/srv/registry", "nfs4"),
        ("/srv/registry-local", "xfs"),
        ("/srv/registry/scratch", "tmpfs"),
        ("/mnt/with space", "cifs"),
    ]
    assert parse_mountinfo("garbage\n\n1 2 3\n") == []


def test_the_longest_mount_point_above_a_folder_wins() -> None:
    assert filesystem_type("/srv/registry/db", MOUNTINFO) == "nfs4"
    assert filesystem_type("/srv/registry", MOUNTINFO) == "nfs4"
    assert filesystem_type("/srv/registry-local/db", MOUNTINFO) == "xfs"  # not a prefix match on names
    assert filesystem_type("/srv/registry/scratch/x", MOUNTINFO) == "tmpfs"
    assert filesystem_type("/home/x", MOUNTINFO) == "ext4"
    assert is_network_filesystem("/srv/registry/db", MOUNTINFO)
    assert is_network_filesystem("/mnt/with space/db", MOUNTINFO)
    assert not is_network_filesystem("/srv/registry-local/db", MOUNTINFO)


def test_this_machine_s_folders_have_a_type(tmp_path: Path) -> None:
    assert filesystem_type(str(tmp_path)) not in (None, "")
    assert not is_network_filesystem(str(tmp_path))
