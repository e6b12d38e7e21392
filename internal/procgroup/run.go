// Package procgroup runs a command (a hook) in a process group of its
// own, and kills the whole group when the command outlives its context:
// what it started in the background must not outlive the bound either.
package procgroup

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// Run starts cmd (made with exec.Command, not CommandContext) in a new
// process group, waits for it, and when ctx ends first sends SIGKILL to
// the group. It reports whether it killed.
//
// A group has no pidfd: it is named by its leader's PID, and a bare
// kill(-PGID) could reach another group that reused the number. Not
// here: the leader is not reaped until the kill is done. Run learns of
// its exit by polling its pidfd, which reaps nothing, and only then
// calls cmd.Wait. An unreaped leader, zombie or not, keeps its PID and
// so its group's ID. (os/exec's Cancel runs beside Wait's reaping, so a
// group kill there could come after the ID was freed.)
func Run(ctx context.Context, cmd *exec.Cmd) (killed bool, err error) {
	pidfd := -1
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.PidFD = true, &pidfd
	if err := cmd.Start(); err != nil {
		return false, err
	}
	if pidfd < 0 {
		// Every kernel stallmon runs on (5.10+) has pidfds.
		cmd.Process.Kill()
		cmd.Wait()
		return false, errors.New("no pidfd for the command: not killing a process group by a number alone")
	}
	defer unix.Close(pidfd)
	exited := make(chan error, 1)
	go func() {
		for {
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
				exited <- err
				return
			}
		}
	}()
	select {
	case err := <-exited:
		if err != nil {
			// Cannot watch it: kill it rather than lose the bound.
			killed = true
			err = errors.Join(fmt.Errorf("waiting for the command: %w", err), unix.Kill(-cmd.Process.Pid, unix.SIGKILL))
			cmd.Wait()
			return killed, err
		}
	case <-ctx.Done():
		killed = true
		if err := unix.Kill(-cmd.Process.Pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			cmd.Wait()
			return killed, fmt.Errorf("killing the command's process group: %w", err)
		}
	}
	return killed, cmd.Wait()
}
