package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// source is what a build takes from git: the version and the time that
// stamps every file.
type source struct {
	describe string    // what `stallmon version` prints
	version  string    // the packages' version, which deb and rpm order
	commit   string    // the commit built, for the changelog
	date     time.Time // its commit time: SOURCE_DATE_EPOCH
}

func gitSource(override string) (source, error) {
	var s source
	out, err := git("log", "-1", "--format=%ct %H")
	if err != nil {
		return s, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return s, fmt.Errorf("git log: unexpected %q", out)
	}
	sec, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return s, fmt.Errorf("git log: commit time %q: %w", f[0], err)
	}
	s.date, s.commit = time.Unix(sec, 0).UTC(), f[1]
	if override != "" {
		s.describe, s.version = override, override
		return s, nil
	}
	if s.describe, err = git("describe", "--tags", "--always", "--dirty"); err != nil {
		return s, err
	}
	s.version = packageVersion(s.describe, s.date)
	return s, nil
}

var tagged = regexp.MustCompile(`^v?([0-9]+\.[0-9]+\.[0-9]+)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)

// packageVersion turns git describe's output into a version that deb,
// rpm and semver all order: v1.2.3 is 1.2.3, four commits after it
// 1.2.3+4.gHASH. Without a tag (describe gives a bare hash) it is
// 0.0.0+gitDATE.HASH, ordered by the commit's time.
func packageVersion(describe string, date time.Time) string {
	dirty := ""
	if strings.HasSuffix(describe, "-dirty") {
		dirty = ".dirty"
	}
	if m := tagged.FindStringSubmatch(describe); m != nil {
		if m[2] == "" && dirty != "" {
			return m[1] + "+dirty"
		}
		if m[2] == "" {
			return m[1]
		}
		return m[1] + "+" + m[2] + ".g" + m[3] + dirty
	}
	hash := strings.TrimSuffix(describe, "-dirty")
	return "0.0.0+git" + date.Format("20060102150405") + "." + hash + dirty
}

func git(args ...string) (string, error) {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
