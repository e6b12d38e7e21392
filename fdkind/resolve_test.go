package fdkind

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// resolveSelf resolves fd in the test process and fails the test on error.
func resolveSelf(t *testing.T, fd int) Kind {
	t.Helper()
	k, err := Resolve(os.Getpid(), fd)
	if err != nil {
		t.Fatalf("Resolve(self, %d): %v", fd, err)
	}
	return k
}

func closeFD(t *testing.T, fd int) {
	t.Cleanup(func() { unix.Close(fd) })
}

func TestResolveRegularFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "regular")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := resolveSelf(t, int(f.Fd())); got != Regular {
		t.Fatalf("temp file resolved to %v, want regular", got)
	}
}

func TestResolvePipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, f := range []*os.File{r, w} {
		if got := resolveSelf(t, int(f.Fd())); got != Pipe {
			t.Errorf("pipe end %s resolved to %v, want pipe", f.Name(), got)
		}
	}
}

func TestResolveFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// O_RDWR so the open does not wait for a peer.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeFD(t, fd)
	if got := resolveSelf(t, fd); got != Pipe {
		t.Fatalf("FIFO resolved to %v, want pipe", got)
	}
}

func TestResolveSocketpair(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeFD(t, fds[0])
	closeFD(t, fds[1])
	for _, fd := range fds {
		if got := resolveSelf(t, fd); got != Socket {
			t.Errorf("socketpair fd %d resolved to %v, want socket", fd, got)
		}
	}
}

func TestResolveDevNull(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Skipf("no /dev/null: %v", err)
	}
	defer f.Close()
	if got := resolveSelf(t, int(f.Fd())); got != Device {
		t.Fatalf("/dev/null resolved to %v, want device", got)
	}
}

func TestResolveAnonInodes(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	closeFD(t, efd)
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	closeFD(t, epfd)
	for name, fd := range map[string]int{"eventfd": efd, "epoll": epfd} {
		if got := resolveSelf(t, fd); got != Other {
			t.Errorf("%s resolved to %v, want other", name, got)
		}
	}
}

func TestResolveDirectory(t *testing.T) {
	fd, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeFD(t, fd)
	if got := resolveSelf(t, fd); got != Other {
		t.Fatalf("directory resolved to %v, want other", got)
	}
}

func TestResolvePTY(t *testing.T) {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pty support: %v", err)
	}
	closeFD(t, master)
	if got := resolveSelf(t, master); got != TTY {
		t.Errorf("pty master resolved to %v, want tty", got)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	// TIOCGPTPEER opens the slave without needing /dev/pts to be the
	// devpts instance that ptmx belongs to, as in many containers.
	slave, err := unix.IoctlRetInt(master, unix.TIOCGPTPEER)
	if err != nil {
		t.Skipf("TIOCGPTPEER: %v", err)
	}
	closeFD(t, slave)
	if got := resolveSelf(t, slave); got != TTY {
		t.Errorf("pty slave resolved to %v, want tty", got)
	}
}

func TestResolveClosedFD(t *testing.T) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	k, err := Resolve(os.Getpid(), fd)
	if err == nil {
		t.Fatalf("Resolve of closed fd %d = %v, want an error", fd, k)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
	if k != None {
		t.Errorf("Resolve of closed fd returned %v alongside the error, want none", k)
	}
}

func TestTTYMajors(t *testing.T) {
	cases := map[uint32]bool{
		1: false, 3: false, 4: true, 5: true, 6: false,
		135: false, 136: true, 143: true, 144: false, 188: false,
	}
	for major, want := range cases {
		if got := isTTYMajor(major); got != want {
			t.Errorf("isTTYMajor(%d) = %v, want %v", major, got, want)
		}
	}
}

func TestTTYPaths(t *testing.T) {
	cases := map[string]bool{
		"/dev/pts/3":    true,
		"/dev/ttyUSB0":  true,
		"/dev/ttyACM1":  true,
		"/dev/console":  true,
		"/dev/ptmx":     true,
		"/dev/null":     false,
		"/dev/ptsx":     false,
		"/tmp/dev/tty1": false,
		"pipe:[1234]":   false,
	}
	for path, want := range cases {
		if got := isTTYPath(path); got != want {
			t.Errorf("isTTYPath(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestAnonLinks(t *testing.T) {
	cases := map[string]bool{
		"anon_inode:[eventfd]":   true,
		"anon_inode:[eventpoll]": true,
		"anon_inode:inotify":     true,
		"/tmp/anon_inode:[x]":    false,
		"/memfd:buf (deleted)":   false,
		"socket:[99]":            false,
	}
	for link, want := range cases {
		if got := isAnon(link); got != want {
			t.Errorf("isAnon(%q) = %v, want %v", link, got, want)
		}
	}
}

// TestClassify covers what the running kernel may not produce: anonymous
// inodes reported as S_IFREG, terminals with dynamic majors, block devices.
func TestClassify(t *testing.T) {
	link := func(s string) func() (string, error) {
		return func() (string, error) { return s, nil }
	}
	noLink := func() (string, error) {
		t.Error("readlink called where the mode settles the kind")
		return "", nil
	}
	cases := []struct {
		name     string
		mode     uint32
		rdev     uint64
		readlink func() (string, error)
		want     Kind
	}{
		{"regular file", unix.S_IFREG | 0o644, 0, link("/var/lib/db/data"), Regular},
		{"deleted file", unix.S_IFREG | 0o644, 0, link("/tmp/x (deleted)"), Regular},
		{"anon inode as S_IFREG", unix.S_IFREG | 0o600, 0, link("anon_inode:[eventfd]"), Other},
		{"anon inode without type", 0o600, 0, noLink, Other},
		{"socket", unix.S_IFSOCK | 0o777, 0, noLink, Socket},
		{"fifo", unix.S_IFIFO | 0o600, 0, noLink, Pipe},
		{"directory", unix.S_IFDIR | 0o755, 0, noLink, Other},
		{"block device", unix.S_IFBLK | 0o660, unix.Mkdev(8, 0), noLink, Device},
		{"pty slave", unix.S_IFCHR | 0o620, unix.Mkdev(136, 3), noLink, TTY},
		{"serial port", unix.S_IFCHR | 0o660, unix.Mkdev(4, 64), noLink, TTY},
		{"usb serial", unix.S_IFCHR | 0o660, unix.Mkdev(188, 0), link("/dev/ttyUSB0"), TTY},
		{"dev null", unix.S_IFCHR | 0o666, unix.Mkdev(1, 3), link("/dev/null"), Device},
		{"fuse", unix.S_IFCHR | 0o666, unix.Mkdev(10, 229), link("/dev/fuse"), Device},
	}
	for _, c := range cases {
		got, err := classify(c.mode, c.rdev, c.readlink)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: classify = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestClassifyReadlinkError(t *testing.T) {
	gone := errors.New("fd closed")
	k, err := classify(unix.S_IFREG, 0, func() (string, error) { return "", gone })
	if !errors.Is(err, gone) || k != None {
		t.Errorf("classify with failing readlink = %v, %v", k, err)
	}
}
