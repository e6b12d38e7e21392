package dist

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// suite is the Debian release the packages are installed into, the one
// this machine runs.
const suite = "bookworm"

// cachedRoot returns a tarball of a minimal bookworm root with apt and
// systemd (whose targets the units name), made by mmdebstrap from the mirror apt uses here the first time and
// kept under bin/cache/ (git-ignored) for the next runs of this clone.
func cachedRoot(t *testing.T, root string) string {
	t.Helper()
	cache := filepath.Join(root, "bin", "cache")
	tarball := filepath.Join(cache, "mmdebstrap-"+suite+"-amd64-apt-systemd.tar")
	if _, err := os.Stat(tarball); err == nil {
		t.Logf("reusing %s", tarball)
		return tarball
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	mirror := debianMirror(t)
	// Written beside, renamed when whole: an interrupted bootstrap leaves
	// no cache behind.
	part := tarball + ".part"
	defer os.Remove(part)
	run(t, "", nil, "mmdebstrap", "--quiet", "--variant=apt", "--include=systemd", "--architectures=amd64", "--format=tar", suite, part, mirror)
	if err := os.Rename(part, tarball); err != nil {
		t.Fatal(err)
	}
	return tarball
}

// debianMirror is the first Debian archive (not the security one) in
// apt's sources here.
func debianMirror(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, "/etc/apt/sources.list")
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			for _, field := range strings.Fields(sc.Text()) {
				if strings.HasPrefix(field, "http") && strings.HasSuffix(strings.TrimSuffix(field, "/"), "/debian") {
					f.Close()
					return field
				}
			}
		}
		f.Close()
	}
	t.Fatalf("no Debian archive in apt's sources (%v)", files)
	return ""
}

// freshRoot unpacks the cached root into a directory of its own.
func freshRoot(t *testing.T, tarball string) string {
	t.Helper()
	dir := t.TempDir()
	run(t, "", nil, "tar", "-x", "-f", tarball, "-C", dir)
	return dir
}

// inRoot runs a command inside the root.
func inRoot(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return run(t, "", []string{"DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8"}, "chroot", append([]string{dir}, args...)...)
}

// aptInstall copies a .deb into the root and installs it with apt there,
// as an operator would: apt install ./stallmon_....deb.
func aptInstall(t *testing.T, dir, deb string) string {
	t.Helper()
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(deb)
	if err := os.WriteFile(filepath.Join(dir, "root", name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return inRoot(t, dir, "sh", "-c", "cd /root && apt-get install -y ./"+name+" </dev/null")
}
