package pacemakertest

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

func (c *Cluster) path(name string) string { return filepath.Join(c.dir, name) }

// ocfResourceDir is where Pacemaker looks for OCF agents, one directory
// per provider (compiled in: no setting moves it).
const ocfResourceDir = "/usr/lib/ocf/resource.d"

// ocfMounts adds to the mount script the lines that show the cluster a
// copy of ocfResourceDir with the installed providers bound in, plus
// extra ones.
func (c *Cluster) ocfMounts(script string, extra map[string]string) (string, error) {
	dir := c.path("ocf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	binds := map[string]string{}
	entries, err := os.ReadDir(ocfResourceDir)
	if err != nil {
		return "", fmt.Errorf("installed OCF agents: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			binds[e.Name()] = filepath.Join(ocfResourceDir, e.Name())
		}
	}
	for name, src := range extra {
		if _, ok := binds[name]; ok {
			return "", fmt.Errorf("OCF provider %s is installed already", name)
		}
		abs, err := filepath.Abs(src)
		if err != nil {
			return "", err
		}
		binds[name] = abs
	}
	for name, src := range binds {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			return "", err
		}
		script += fmt.Sprintf("mount --bind %s %s\n", shellQuote(src), shellQuote(filepath.Join(dir, name)))
	}
	return script + fmt.Sprintf("mount --rbind %s %s\n", shellQuote(dir), ocfResourceDir), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// prepare writes the configuration and the state directories the daemons
// see in place of the host's.
func (c *Cluster) prepare() error {
	u, err := user.Lookup("hacluster")
	if err != nil {
		return fmt.Errorf("pacemaker's user: %w", err)
	}
	g, err := user.LookupGroup("haclient")
	if err != nil {
		return fmt.Errorf("pacemaker's group: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	for _, d := range []string{"lib-pacemaker", "lib-corosync"} {
		if err := os.Mkdir(c.path(d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"cib", "pengine", "blackbox", "cores"} {
		p := filepath.Join(c.path("lib-pacemaker"), d)
		if err := os.Mkdir(p, 0o750); err != nil {
			return err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`totem {
	version: 2
	cluster_name: stallmon-test
	crypto_cipher: none
	crypto_hash: none
}
logging {
	to_stderr: yes
	to_logfile: no
	to_syslog: no
}
quorum {
	provider: corosync_votequorum
}
nodelist {
	node {
		name: %s
		nodeid: 1
		ring0_addr: 127.0.0.1
	}
}
`, c.Node)
	if err := os.WriteFile(c.path("corosync.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	cib := filepath.Join(c.path("lib-pacemaker"), "cib", "cib.xml")
	if err := os.WriteFile(cib, []byte(initialCIB), 0o600); err != nil {
		return err
	}
	return os.Chown(cib, uid, gid)
}

// initialCIB is what the test cluster starts from: no resources, no
// fencing, and a short wait for peers that will never come.
const initialCIB = `<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="stallmon-test">
        <nvpair id="stallmon-test-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="stallmon-test-dc-deadtime" name="dc-deadtime" value="2s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
`
