package workload_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// hbListener hears a group on loopback, as the seed's peers do.
type hbListener struct {
	conn  *net.UDPConn
	group *net.UDPAddr
}

func listenGroup(t *testing.T) *hbListener {
	t.Helper()
	group := nettest.LoopbackGroup(t)
	pc, err := (&net.ListenConfig{}).ListenPacket(context.Background(), "udp4", group.String())
	if err != nil {
		t.Fatalf("listening on %v: %v", group, err)
	}
	conn := pc.(*net.UDPConn)
	t.Cleanup(func() { conn.Close() })
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := ipv4.NewPacketConn(conn).JoinGroup(lo, &net.UDPAddr{IP: group.IP}); err != nil {
		t.Fatalf("joining %v: %v", group, err)
	}
	return &hbListener{conn: conn, group: group}
}

// next is the next heartbeat's sender pid, sequence number and send time
// (CLOCK_MONOTONIC, ns), within a bound that only a broken heartbeat
// reaches.
func (l *hbListener) next(t *testing.T) (pid, seq, mono int) {
	t.Helper()
	buf := make([]byte, 256)
	if err := l.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, _, err := l.conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no heartbeat on %v: %v", l.group, err)
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) != 4 || f[0] != "hb" {
		t.Fatalf("heartbeat %q, want hb PID SEQ MONO", buf[:n])
	}
	var nums [3]int
	for i, s := range f[1:] {
		if nums[i], err = strconv.Atoi(s); err != nil {
			t.Fatalf("heartbeat %q: %v", buf[:n], err)
		}
	}
	return nums[0], nums[1], nums[2]
}

// expectSeqs reads heartbeats until count of them were sent after since
// (CLOCK_MONOTONIC, ns), and checks they all come from pid in order, from
// seq from on: none lost on loopback. It returns the last seq.
func (l *hbListener) expectSeqs(t *testing.T, pid, from, count, since int) int {
	t.Helper()
	seq := from - 1
	for count > 0 {
		gotPID, got, mono := l.next(t)
		if gotPID != pid || got != seq+1 {
			t.Fatalf("heartbeat from pid %d seq %d, want pid %d seq %d", gotPID, got, pid, seq+1)
		}
		seq = got
		if mono > since {
			count--
		}
	}
	return seq
}

func mono(t *testing.T) int {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return int(ts.Nano())
}

func TestHeartbeat(t *testing.T) {
	l := listenGroup(t)
	p := start(t)
	r := do(t, p, fmt.Sprintf("heartbeat %s 20ms", l.group))
	tid, fd := mustInt(t, r, "tid"), mustInt(t, r, "fd")
	if tid == p.PID {
		t.Errorf("the heartbeat runs on the main thread %d", tid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", p.PID, tid)); err != nil {
		t.Errorf("heartbeat thread %d: %v", tid, err)
	}
	last := l.expectSeqs(t, p.PID, 1, 5, 0)
	if _, err := p.Do(fmt.Sprintf("heartbeat %s 20ms", l.group)); !isReplyError(err) {
		t.Errorf("second heartbeat: err=%v, want an err reply", err)
	}
	stop := do(t, p, "heartbeat-stop")
	if n := mustInt(t, stop, "count"); n < last {
		t.Errorf("heartbeat-stop counts %d sent, but seq %d was heard", n, last)
	}
	if n := mustInt(t, stop, "errors"); n != 0 {
		t.Errorf("%d sends failed on loopback", n)
	}
	// The socket went with the thread: nothing is left to gate or leak.
	if _, err := os.Lstat(fmt.Sprintf("/proc/%d/fd/%d", p.PID, fd)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("heartbeat socket fd %d still open after heartbeat-stop (lstat err=%v)", fd, err)
	}
	if _, err := p.Do("heartbeat-stop"); !isReplyError(err) {
		t.Errorf("heartbeat-stop with nothing sending: err=%v, want an err reply", err)
	}
}

// The property the demo stands on: a worker stuck in the kernel leaves
// the heartbeat thread going, as in the seed's failure.
func TestHeartbeatGoesOnBesideHang(t *testing.T) {
	privtest.Require(t)
	privtest.RequireUserfaultfd(t)
	l := listenGroup(t)
	p := start(t)
	do(t, p, fmt.Sprintf("heartbeat %s 20ms", l.group))
	seq := l.expectSeqs(t, p.PID, 1, 2, 0)
	assertStuck(t, p, do(t, p, "uffd-hang"), "handle_userfault")
	// Five sent after the worker was seen asleep in the kernel.
	l.expectSeqs(t, p.PID, seq+1, 5, mono(t))
	do(t, p, "uffd-release")
	do(t, p, "heartbeat-stop")
}

func TestHeartbeatBadArgs(t *testing.T) {
	p := start(t)
	for _, cmd := range []string{"heartbeat 239.255.1.1 20ms", "heartbeat [ff02::1]:5000 20ms", "heartbeat 239.255.1.1:5000 0s",
		"heartbeat 239.255.1.1:5000 soon", "heartbeat 239.255.1.1:5000"} {
		if _, err := p.Do(cmd); !isReplyError(err) {
			t.Errorf("%q: err=%v, want an err reply", cmd, err)
		}
	}
}
