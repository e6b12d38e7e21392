package pacemakertest

import (
	"context"
	"encoding/xml"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
)

// Status is the part of `crm_mon --output-as=xml` the tests read.
type Status struct {
	Summary struct {
		DC struct {
			Present bool `xml:"present,attr"`
		} `xml:"current_dc"`
	} `xml:"summary"`
	Nodes     []Node     `xml:"nodes>node"`
	Resources []Resource `xml:"resources>resource"`
	Groups    []struct {
		ID        string     `xml:"id,attr"`
		Resources []Resource `xml:"resource"`
	} `xml:"resources>group"`
}

// Primitives lists every primitive, in a group or not.
func (s Status) Primitives() []Resource {
	all := append([]Resource(nil), s.Resources...)
	for _, g := range s.Groups {
		all = append(all, g.Resources...)
	}
	return all
}

// Node is one node as crm_mon sees it.
type Node struct {
	Name   string `xml:"name,attr"`
	Online bool   `xml:"online,attr"`
	// Health is red, yellow or green: the worst of the node's #health-
	// attributes.
	Health string `xml:"health,attr"`
}

// Resource is one primitive as crm_mon sees it.
type Resource struct {
	ID     string `xml:"id,attr"`
	Role   string `xml:"role,attr"`
	Active bool   `xml:"active,attr"`
	Failed bool   `xml:"failed,attr"`
	// Pending names an action in flight ("Starting"): a resource being
	// started shows active already.
	Pending string `xml:"pending,attr"`
	Nodes   []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

// Online reports whether node is online.
func (s Status) Online(node string) bool {
	for _, n := range s.Nodes {
		if n.Name == node {
			return n.Online
		}
	}
	return false
}

// Node returns the named node's record.
func (s Status) Node(name string) (Node, bool) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// RunsOn reports whether resource id is started on node, with no action
// in flight.
func (s Status) RunsOn(id, node string) bool {
	r, ok := s.on(id, node)
	return ok && r.Role == "Started" && r.Pending == ""
}

// ActiveOn reports whether resource id is active on node in any way,
// starting and stopping included: false once a stop has completed.
func (s Status) ActiveOn(id, node string) bool {
	_, ok := s.on(id, node)
	return ok
}

func (s Status) on(id, node string) (Resource, bool) {
	for _, r := range s.Primitives() {
		if r.ID != id || !r.Active {
			continue
		}
		for _, n := range r.Nodes {
			if n.Name == node {
				return r, true
			}
		}
	}
	return Resource{}, false
}

// Status asks crm_mon for the cluster's state.
func (c *Cluster) Status(ctx context.Context) (Status, error) {
	out, err := Run(ctx, "crm_mon", "--one-shot", "--output-as=xml", "--include=nodes,resources,summary")
	if err != nil {
		return Status{}, err
	}
	var st Status
	if err := xml.Unmarshal([]byte(out), &st); err != nil {
		return Status{}, fmt.Errorf("parsing crm_mon's XML: %w", err)
	}
	return st, nil
}

// Attribute returns the node's value of a transient attribute, from
// pacemaker-attrd ("" when it has none).
func (c *Cluster) Attribute(ctx context.Context, name string) (string, error) {
	out, err := Run(ctx, "attrd_updater", "--query", "--name="+name, "--node="+c.Node, "--output-as=xml")
	if err != nil {
		if strings.Contains(out, "attribute does not exist") {
			return "", nil
		}
		return "", fmt.Errorf("%w: %s", err, out)
	}
	var res struct {
		Attrs []struct {
			Name  string `xml:"name,attr"`
			Node  string `xml:"host,attr"`
			Value string `xml:"value,attr"`
		} `xml:"attribute"`
	}
	if err := xml.Unmarshal([]byte(out), &res); err != nil {
		return "", fmt.Errorf("parsing attrd_updater's XML: %w", err)
	}
	for _, a := range res.Attrs {
		if a.Name == name && a.Node == c.Node {
			return a.Value, nil
		}
	}
	return "", nil
}

// WaitFor polls cond on the cluster's status every 20ms until it holds,
// and returns when it first saw it hold; t fails after timeout.
func (c *Cluster) WaitFor(t testing.TB, what string, timeout time.Duration, cond func(Status) bool) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last Status
	var lastErr error
	for {
		st, err := c.Status(ctx)
		if err == nil && cond(st) {
			return time.Now()
		}
		if err == nil {
			last = st
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("waiting %v for %s: last status %+v, last error %v\n%s", timeout, what, last, lastErr, c.Logs())
			return time.Time{}
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Script runs a shell snippet from deploy/ with env set, as an operator
// would paste it.
func (c *Cluster) Script(t testing.TB, path string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-eu", path)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running %s %v: %v\n%s", path, env, err, out)
	}
}

// Cmd runs a cluster tool and fails t on an error.
func (c *Cluster) Cmd(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := Run(ctx, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Processes returns the pids of the cluster's processes named comm: the
// daemons, and whatever their resource agents started.
func (c *Cluster) Processes(comm string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(c.cg.Path, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		procs, err := cgroup.Dir{Path: path}.Procs()
		if err != nil {
			return err
		}
		for _, pid := range procs {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if err == nil && strings.TrimSpace(string(b)) == comm {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, err
}
