package fdkind

import "strconv"

// fsNames are the super block magics (include/uapi/linux/magic.h and the
// file systems' own headers) of the file systems an operator would want
// named in a stall: where a hang comes from is usually which file system.
var fsNames = map[uint64]string{
	0xEF53:     "ext4", // also ext2 and ext3
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0x858458F6: "ramfs",
	0x6969:     "nfs",
	0x65735546: "fuse",
	0x794C7630: "overlay",
	0x9FA0:     "proc",
	0x62656572: "sysfs",
	0x27E0EB:   "cgroup",
	0x63677270: "cgroup2",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x00C36400: "ceph",
	0x01021997: "9p",
	0x4D44:     "vfat",
	0x2011BAB0: "exfat",
	0x5346544E: "ntfs",
	0x73717368: "squashfs",
	0xE0F5E1E2: "erofs",
	0x9660:     "iso9660",
	0x2FC12FC1: "zfs",
	0x01161970: "gfs2",
	0x7461636F: "ocfs2",
	0x1CD1:     "devpts",
	0x09041934: "anon_inode",
	0x534F434B: "sockfs",
	0x50495045: "pipefs",
	0x50494446: "pidfs",
	0x6E736673: "nsfs",
	0xCAFE4A11: "bpf",
	0x64626720: "debugfs",
	0x74726163: "tracefs",
	0x42494E4D: "binfmt_misc",
	0x19800202: "mqueue",
	0x958458F6: "hugetlbfs",
	0x73636673: "securityfs",
	0x6B414653: "afs",
	0x0BD00BD0: "lustre",
	0x15013346: "udf",
	0x24051905: "ubifs",
	0x72B6:     "jffs2",
	0xF2F52010: "f2fs",
	0x67596969: "rpc_pipefs",
}

// FSName names the file system with super block magic m, or gives the
// magic in hex when it is not one of the known ones; "" for 0 (no file).
func FSName(m uint64) string {
	if m == 0 {
		return ""
	}
	if n, ok := fsNames[m]; ok {
		return n
	}
	return "0x" + strconv.FormatUint(m, 16)
}
