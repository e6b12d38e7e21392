package pacemaker

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// findUpdater resolves the attrd_updater program: path if given (it must
// be executable), else the one on PATH.
func findUpdater(path string) (string, error) {
	if path == "" {
		p, err := exec.LookPath("attrd_updater")
		if err != nil {
			return "", fmt.Errorf("%w on PATH (Debian: apt-get install pacemaker-cli-utils): %w", errNoUpdater, err)
		}
		return p, nil
	}
	// LookPath with a slash checks the file itself is executable.
	if !strings.Contains(path, "/") {
		path = "./" + path
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNoUpdater, err)
	}
	return p, nil
}

// update sets the local node's attribute through pacemaker-attrd, which
// writes it to the CIB when the value changes. The long options with "="
// keep a name that starts with a dash from being read as an option.
func update(ctx context.Context, updater, name, value string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCallTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, updater, "--name="+name, "--update="+value)
	// Should attrd_updater leave a child holding its output open, Wait
	// must not outlast the deadline by more than this.
	cmd.WaitDelay = 100 * time.Millisecond
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		err = fmt.Errorf("attrd_updater --name=%s --update=%s: %w", name, value, err)
		if msg := strings.TrimSpace(string(out)); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}
