package budget

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Load reads the table at path, then the drop-ins of DropInDir(path):
// every *.yaml file there, in lexical order, each extending the table
// before it. A missing directory has none; an unreadable one, or a
// drop-in that cannot be read or is wrong, is an error naming it, so an
// operator's change is never dropped silently.
func Load(path string, known func(name string) bool) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read budget table: %w", err)
	}
	t, err := mainTable(data, known, &source{name: path, order: 1})
	if err != nil {
		return nil, err
	}
	return t.withDropIns(DropInDir(path), known)
}

// LoadIfPresent is Load when a file is at path, else the built-in table
// with the drop-ins of DropInDir(path), if any: for the default path,
// which may be absent. A dangling symlink at path is an error.
func LoadIfPresent(path string, known func(name string) bool) (*Table, error) {
	if absent, err := absent(path); err != nil {
		return nil, fmt.Errorf("read budget table: %w", err)
	} else if !absent {
		return Load(path, known)
	}
	t, err := builtinSpecs(known)
	if err != nil {
		return nil, err
	}
	return t.withDropIns(DropInDir(path), known)
}

// DropInDir is where the drop-ins of the table at path live: path
// without its .yaml or .yml extension, plus .d.
func DropInDir(path string) string {
	if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
		path = strings.TrimSuffix(path, ext)
	}
	return path + ".d"
}

func (t *Table) withDropIns(dir string, known func(string) bool) (*Table, error) {
	files, err := dropIns(dir)
	if err != nil {
		return nil, err
	}
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read budget drop-in: %w", err)
		}
		l, err := parseLayer(data, known, layerOpts{dropIn: true}, &source{name: f, order: 2 + i})
		if err != nil {
			return nil, err
		}
		if t, err = t.with(l); err != nil {
			return nil, err
		}
	}
	return t.built()
}

// dropIns lists dir's *.yaml files in lexical order. Other files are
// left alone (a package manager's .dpkg-old or .rpmnew, an editor's
// backup), and so are hidden ones, as systemd and sysctl.d do (an
// editor's lock file .#10-a.yaml is a dangling symlink that would stop
// stallmon from starting mid-edit); except *.yml or any other spelling of
// .yaml: that is a drop-in misnamed, and skipping it would drop the
// operator's change unseen.
func dropIns(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if gone, lerr := absent(dir); lerr != nil || !gone {
			return nil, fmt.Errorf("read budget drop-ins: %w", err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read budget drop-ins: %w", err)
	}
	var files []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		switch ext := filepath.Ext(e.Name()); {
		case ext == ".yaml":
			files = append(files, filepath.Join(dir, e.Name()))
		case strings.EqualFold(ext, ".yaml") || strings.EqualFold(ext, ".yml"):
			return nil, fmt.Errorf("budget drop-in %s: drop-ins end in .yaml; rename it", filepath.Join(dir, e.Name()))
		}
	}
	return files, nil
}

// absent reports whether nothing at all is at path: a dangling symlink
// is something, which someone meant to be there.
func absent(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(path); err != nil {
		return false, err
	}
	return false, nil
}
