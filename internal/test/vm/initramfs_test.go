package vm

import (
	"compress/gzip"
	_ "embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

//go:embed init.sh
var initScript []byte

// guestBinary is one test binary for the guest and the package directory
// whose testdata goes with it.
type guestBinary struct {
	name   string // NAME of NAME.test, and of /tests/NAME/
	path   string // the binary on the host
	pkgDir string // the package's source directory on the host
}

// initramfs is what goes into the guest besides the kernel.
type initramfs struct {
	busybox  string        // static busybox binary
	tests    []guestBinary // run by /init in this order (sorted by name)
	modules  []string      // .ko files /init loads before the tests, in glob order
	stallmon string        // the stallmon command, /bin/stallmon in the guest
	// ia32wait is internal/testutil/ctarget's 32-bit program, /bin/ia32wait
	// in the guest: the CI host's kernel runs no ia32 programs, Debian's do.
	ia32wait string
	x32wait  string // the same program built for x32, /bin/x32wait
	// ctarget is a directory of internal/testutil/ctarget's programs,
	// built static: /ctarget in the guest, which has no gcc.
	ctarget string
}

// write builds the gzip-compressed newc archive at path.
func (r initramfs) write(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating initramfs: %w", err)
	}
	defer f.Close()
	// gzip at its fastest: an uncompressed archive measured no faster to
	// boot under TCG, so compression only needs to be cheap to make.
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return err
	}
	c := newCPIOWriter(zw)
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "root", "lib", "lib/modules", "tests"} {
		c.Dir(d, 0o755)
	}
	// The kernel opens /dev/console for init's stdio before /init runs
	// and mounts devtmpfs.
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("init", 0o755, initScript)
	c.CopyFile("bin/busybox", r.busybox)
	c.Symlink("bin/sh", "busybox")
	if r.stallmon != "" {
		c.CopyFile("bin/stallmon", r.stallmon)
	}
	if r.ia32wait != "" {
		c.CopyFile("bin/ia32wait", r.ia32wait)
	}
	if r.x32wait != "" {
		c.CopyFile("bin/x32wait", r.x32wait)
	}
	if r.ctarget != "" {
		if err := addTree(c, r.ctarget, "ctarget"); err != nil {
			return err
		}
	}
	for _, ko := range r.modules {
		c.CopyFile("lib/modules/"+filepath.Base(ko), ko)
	}
	for _, b := range r.tests {
		dir := "tests/" + b.name
		c.Dir(dir, 0o755)
		c.CopyFile(dir+"/"+b.name+".test", b.path)
		if err := addTree(c, filepath.Join(b.pkgDir, "testdata"), dir+"/testdata"); err != nil {
			return err
		}
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("writing initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing initramfs: %w", err)
	}
	return f.Close()
}

// addTree copies the directory src, if it exists, to dst in the archive.
func addTree(c *cpioWriter, src, dst string) error {
	if _, err := os.Stat(src); os.IsNotExist(err) {
		return nil
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copying %s into initramfs: %w", src, err)
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(dst+"/"+filepath.ToSlash(rel), "/.")
		switch {
		case d.IsDir():
			c.Dir(name, 0o755)
		case d.Type().IsRegular():
			c.CopyFile(name, path)
		}
		return nil
	})
}
