package vm

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
)

// cpioWriter writes the "newc" cpio format the kernel unpacks as
// initramfs. Written here rather than with cpio(1) so that entries (a
// /dev/console node, root-owned files) need no staging tree and no
// privileges, and the archive is byte-for-byte reproducible.
type cpioWriter struct {
	w     *bufio.Writer
	off   int64
	inode uint32
	err   error
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChar = 0o020000
	modeLink = 0o120000
)

func newCPIOWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: bufio.NewWriter(w)} }

// header writes one entry header with its name, padded to 4 bytes.
func (c *cpioWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) {
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	c.inode++
	c.printf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.inode, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(name + "\x00"))
	c.pad()
}

func (c *cpioWriter) Dir(name string, perm uint32) { c.header(name, modeDir|perm, 0, 0, 0) }

func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) {
	c.header(name, modeChar|perm, 0, major, minor)
}

func (c *cpioWriter) Symlink(name, target string) {
	c.header(name, modeLink|0o777, int64(len(target)), 0, 0)
	c.write([]byte(target))
	c.pad()
}

func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	c.header(name, modeFile|perm, int64(len(data)), 0, 0)
	c.write(data)
	c.pad()
}

// CopyFile adds the file at src under name, keeping its permission bits.
func (c *cpioWriter) CopyFile(name, src string) {
	if c.err != nil {
		return
	}
	data, err := os.ReadFile(src)
	if err != nil {
		c.err = fmt.Errorf("adding %s to cpio: %w", src, err)
		return
	}
	st, err := os.Stat(src)
	if err != nil {
		c.err = fmt.Errorf("adding %s to cpio: %w", src, err)
		return
	}
	c.File(name, uint32(st.Mode().Perm()), data)
}

// Close writes the trailer and flushes; it returns the first error of any
// call.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.err
}

func (c *cpioWriter) printf(format string, args ...any) {
	c.write(fmt.Appendf(nil, format, args...))
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.off += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// The archive is read back entry by entry: every header must start on a
// 4-byte boundary with the newc magic, and names, modes and contents
// must survive.
func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	c.Dir("dev", 0o755)
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("init", 0o755, []byte("#!/bin/sh\n"))
	c.Symlink("bin/sh", "busybox")
	c.File("odd", 0o644, []byte("12345"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	type entry struct {
		name        string
		mode        uint64
		rdev        [2]uint64
		data        string
		nameSizeRaw uint64
	}
	var got []entry
	b := buf.Bytes()
	for off := 0; ; {
		if off%4 != 0 || !bytes.HasPrefix(b[off:], []byte("070701")) {
			t.Fatalf("no header at offset %d: %q", off, b[off:min(off+16, len(b))])
		}
		field := func(i int) uint64 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			return v
		}
		mode, size, nameSize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+int(nameSize)-1])
		dataOff := align4(off + 110 + int(nameSize))
		if name == "TRAILER!!!" {
			break
		}
		got = append(got, entry{name, mode, [2]uint64{field(9), field(10)}, string(b[dataOff : dataOff+int(size)]), nameSize})
		off = align4(dataOff + int(size))
	}
	want := []entry{
		{"dev", 0o040755, [2]uint64{}, "", 4},
		{"dev/console", 0o020600, [2]uint64{5, 1}, "", 12},
		{"init", 0o100755, [2]uint64{}, "#!/bin/sh\n", 5},
		{"bin/sh", 0o120777, [2]uint64{}, "busybox", 7},
		{"odd", 0o100644, [2]uint64{}, "12345", 4},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("archive holds\n%v\nwant\n%v\n%s", got, want, hex.Dump(b[:min(len(b), 256)]))
	}
}

func align4(n int) int { return (n + 3) &^ 3 }
