package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// aptRepo runs apt either on the system's configuration or on a private
// sources list kept under the cache, so that reaching another suite of a
// configured archive never edits /etc/apt under the other users' feet.
type aptRepo struct {
	name string   // for messages
	opts []string // -o settings of the private configuration; nil for the system's
	dir  string   // the private configuration's directory
}

// systemRepo is apt as configured on the host.
var systemRepo = &aptRepo{name: "system apt sources"}

// updateOnce keeps the system's apt-get update to one per test run.
var updateOnce sync.Once

// privateRepo is apt with one source, "deb URI SUITE main", for the
// architecture arch, and its own lists under dir.
func privateRepo(dir, uri, suite, arch string) (*aptRepo, error) {
	for _, d := range []string{"lists/partial", "cache/archives/partial", "sources.list.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating apt state for %s: %w", suite, err)
		}
	}
	signedBy := ""
	if _, err := os.Stat(debianKeyring); err == nil {
		signedBy = "[signed-by=" + debianKeyring + "] "
	}
	list := fmt.Sprintf("deb %s%s %s main\n", signedBy, uri, suite)
	if err := os.WriteFile(filepath.Join(dir, "sources.list"), []byte(list), 0o644); err != nil {
		return nil, fmt.Errorf("writing sources list for %s: %w", suite, err)
	}
	return &aptRepo{
		name: suite + " " + arch + " (" + uri + ")",
		dir:  dir,
		opts: []string{
			"-o", "Dir::Etc::SourceList=" + filepath.Join(dir, "sources.list"),
			"-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "sources.list.d"),
			"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
			"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
			// Installed packages of the host have no say in what this
			// suite offers.
			"-o", "Dir::State::status=/dev/null",
			// Another architecture's packages are only downloaded and
			// unpacked, never installed, so no dpkg --add-architecture.
			"-o", "APT::Architecture=" + arch,
			"-o", "APT::Architectures=" + arch,
		},
	}, nil
}

const debianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

func (r *aptRepo) run(ctx context.Context, dir, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, append(append([]string(nil), r.opts...), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s (%s): %w: %s", tool, strings.Join(args, " "), r.name, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// update refreshes the package lists: always for a private repo (called
// when its lists are missing or stale), at most once a run for the system.
func (r *aptRepo) update(ctx context.Context) error {
	if r.opts != nil {
		if _, err := r.run(ctx, "", "apt-get", "update", "-qq"); err != nil {
			return err
		}
		// A stamp of our own: apt may date the lists by the archive.
		return os.WriteFile(filepath.Join(r.dir, "updated"), nil, 0o644)
	}
	var err error
	updateOnce.Do(func() { _, err = r.run(ctx, "", "apt-get", "update", "-qq") })
	return err
}

// privateListsMaxAge bounds how long a private repo trusts its lists: a
// kernel security update renames the image package, and lists older than
// the archive point at files it has dropped.
const privateListsMaxAge = 24 * time.Hour

// freshLists reports whether a private repo's lists exist and are recent;
// the system's are apt's business.
func (r *aptRepo) freshLists() bool {
	if r.opts == nil {
		return true
	}
	st, err := os.Stat(filepath.Join(r.dir, "updated"))
	return err == nil && time.Since(st.ModTime()) < privateListsMaxAge
}

// ensureLists fetches a private repo's lists if they are missing or stale.
func (r *aptRepo) ensureLists(ctx context.Context) error {
	if r.freshLists() {
		return nil
	}
	return r.update(ctx)
}

// depends returns the packages pkg's candidate version depends on, without
// virtual packages (apt-cache prints those in <>).
func (r *aptRepo) depends(ctx context.Context, pkg string) ([]string, error) {
	out, err := r.run(ctx, "", "apt-cache", "depends", pkg)
	if err != nil {
		return nil, err
	}
	return parseDepends(out), nil
}

func parseDepends(out []byte) []string {
	var deps []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimLeft(strings.TrimSpace(sc.Text()), "|")
		dep, ok := strings.CutPrefix(line, "Depends: ")
		if ok && !strings.HasPrefix(dep, "<") {
			deps = append(deps, dep)
		}
	}
	return deps
}

// resolveDepends is depends, refreshing the lists once if pkg is unknown
// or has no dependencies: apt-cache finds nothing before a first update.
func (r *aptRepo) resolveDepends(ctx context.Context, pkg string) ([]string, error) {
	if !r.freshLists() {
		if err := r.update(ctx); err != nil {
			return nil, err
		}
	}
	deps, err := r.depends(ctx, pkg)
	if err == nil && len(deps) > 0 {
		return deps, nil
	}
	if uerr := r.update(ctx); uerr != nil {
		return nil, errors.Join(err, uerr)
	}
	return r.depends(ctx, pkg)
}

// download returns the path of pkg's candidate .deb in cacheDir, fetching
// it only if that exact file (name, version, arch) is not there yet.
func (r *aptRepo) download(ctx context.Context, pkg, cacheDir string) (string, error) {
	file, err := r.debFileName(ctx, pkg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(cacheDir, file)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating deb cache: %w", err)
	}
	if _, err := r.run(ctx, cacheDir, "apt-get", "download", "-qq", pkg); err != nil {
		// Lists older than the archive name versions it no longer has.
		if uerr := r.update(ctx); uerr != nil {
			return "", errors.Join(err, uerr)
		}
		if file, err = r.debFileName(ctx, pkg); err != nil {
			return "", err
		}
		path = filepath.Join(cacheDir, file)
		if _, err := r.run(ctx, cacheDir, "apt-get", "download", "-qq", pkg); err != nil {
			return "", err
		}
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("apt-get download %s: %w", pkg, err)
	}
	return path, nil
}

// debFileName asks apt which file it would download, without downloading.
func (r *aptRepo) debFileName(ctx context.Context, pkg string) (string, error) {
	out, err := r.run(ctx, "", "apt-get", "download", "--print-uris", "-qq", pkg)
	if err != nil {
		return "", err
	}
	return parsePrintURIs(out)
}

// parsePrintURIs takes the file name out of "'URI' FILE SIZE HASH".
func parsePrintURIs(out []byte) (string, error) {
	f := strings.Fields(string(out))
	if len(f) < 2 || !strings.HasSuffix(f[1], ".deb") {
		return "", fmt.Errorf("unexpected apt-get --print-uris output %q", out)
	}
	return f[1], nil
}

// suiteURIs maps each suite of the system's apt sources to its archive
// URI, from apt's own view of its configuration.
func suiteURIs(ctx context.Context) (map[string]string, error) {
	out, err := systemRepo.run(ctx, "", "apt-get", "indextargets", "--format", "$(RELEASE) $(REPO_URI)")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) == 2 {
			m[f[0]] = strings.TrimSuffix(f[1], "/")
		}
	}
	return m, nil
}

// ensureInstalled installs the packages that provide the missing commands.
func ensureInstalled(ctx context.Context, need map[string]string) error {
	var pkgs []string
	for cmd, pkg := range need {
		if _, err := exec.LookPath(cmd); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	slices.Sort(pkgs)
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)
	if _, err := systemRepo.run(ctx, "", "apt-get", args...); err != nil {
		if uerr := systemRepo.update(ctx); uerr != nil {
			return errors.Join(err, uerr)
		}
		if _, err := systemRepo.run(ctx, "", "apt-get", args...); err != nil {
			return err
		}
	}
	return nil
}
