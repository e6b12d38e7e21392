package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"
)

type options struct {
	out, version string
	arches       []string
}

func run(o options, log *slog.Logger) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return fmt.Errorf("run from the repository's root: %w", err)
	}
	for _, arch := range o.arches {
		if qemuArch[arch] == "" {
			return fmt.Errorf("unknown architecture %q (amd64, arm64)", arch)
		}
	}
	src, err := gitSource(o.version)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "stallmon-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	man, err := compressedManPages(src, filepath.Join(tmp, "man"))
	if err != nil {
		return err
	}
	changelog := filepath.Join(tmp, "changelog.yaml")
	if err := writeChangelog(src, changelog); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	entries := contents(man)
	for _, arch := range o.arches {
		stage := filepath.Join(tmp, arch)
		if err := os.MkdirAll(stage, 0o755); err != nil {
			return err
		}
		if err := stageArch(src, arch, stage); err != nil {
			return err
		}
		for _, format := range []string{"deb", "rpm"} {
			path, err := pack(format, src, arch, stage, entries, changelog, o.out)
			if err != nil {
				return err
			}
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			log.Info("package_written", "path", path, "bytes", st.Size(), "version", src.version)
		}
	}
	return nil
}

// stageArch writes what the build makes for arch into stage: the binary,
// its table, its completions.
func stageArch(src source, arch, stage string) error {
	bin, err := buildBinary(src, arch, stage)
	if err != nil {
		return err
	}
	table, err := budgetsFile(bin, arch)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stage, "budgets.yaml"), table, 0o644); err != nil {
		return err
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, err := runBinary(bin, arch, "completion", shell)
		if err != nil {
			return fmt.Errorf("%s completion for %s: %w", shell, arch, err)
		}
		if err := os.WriteFile(filepath.Join(stage, "completion."+shell), out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func compressedManPages(src source, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := manPages(src, dir); err != nil {
		return nil, err
	}
	pages, err := filepath.Glob(filepath.Join(dir, "*.8"))
	if err != nil || len(pages) == 0 {
		return nil, fmt.Errorf("no man pages in %s (%v)", dir, err)
	}
	slices.Sort(pages)
	for i, p := range pages {
		if err := gzipFile(p); err != nil {
			return nil, err
		}
		pages[i] = p + ".gz"
	}
	return pages, nil
}

// writeChangelog writes the changelog of this build in chglog's format,
// which nfpm turns into changelog.Debian.gz and the rpm's %changelog.
func writeChangelog(src source, path string) error {
	// The entry names the full version, release included, as both
	// formats number the package (lintian and rpmlint compare them).
	entries := []map[string]any{{
		"semver":   src.version + "-" + release,
		"date":     src.date,
		"packager": maintainer,
		"deb":      map[string]any{"urgency": "low", "distributions": []string{"unstable"}},
		"changes":  []map[string]string{{"commit": src.commit, "note": "Built from commit " + src.commit + "."}},
	}}
	b, err := yaml.Marshal(entries)
	if err != nil {
		return fmt.Errorf("changelog: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}
