// consul.go: a real Consul agent, started once per test binary and shared
// by every test in it (give each test its own key prefix). It is a single
// server (-bootstrap-expect=1, not -dev) with its data in a directory, so
// Restart keeps KV, sessions and the catalog — what "Consul restarts during
// a cutover" fault tests need. Its configuration is consul/test.hcl
// (session_ttl_min = "1s", DNS and gRPC off, loopback only); ports are
// random. Stop it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Environment:
//
//	PIER_CONSUL_ADDR=host:port   use this running agent instead (its
//	                             session_ttl_min must be 1s for coordtest;
//	                             Restart is then unavailable)
//	PIER_CONSUL_BIN=/path        the consul binary (default: built by Tool)
//	PIER_REQUIRE_SERVERS=1       fail instead of skip when Consul is missing

package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// consulNode is the agent's node name; sessions are created on it.
const consulNode = "pier-test"

// consulStartTimeout bounds the wait for a leader and the node's health.
const consulStartTimeout = 90 * time.Second

// ConsulAgent is the test binary's Consul agent.
type ConsulAgent struct {
	Addr    string // host:port of the HTTP API
	Node    string // the agent's node name
	DataDir string // "" for PIER_CONSUL_ADDR
}

// consulState is the one agent of this test binary.
var consulState struct {
	once   sync.Once
	err    error
	mu     sync.Mutex // guards srv and restarts
	agent  ConsulAgent
	argv   []string // without -data-dir
	srv    *Server
	extern bool
}

// Consul returns the test binary's Consul agent, starting it on first use
// (a few seconds; the first use on a machine may also build consul, which
// takes minutes). It skips t when consul cannot be built, or fails it with
// PIER_REQUIRE_SERVERS=1.
func Consul(t testing.TB) ConsulAgent {
	t.Helper()
	if addr := os.Getenv("PIER_CONSUL_ADDR"); addr != "" {
		consulState.once.Do(func() {
			consulState.extern = true
			consulState.agent = ConsulAgent{Addr: addr}
		})
		return consulState.agent
	}
	bin := Tool(t, "consul")
	root := RepoRoot(t)
	consulState.once.Do(func() { consulState.err = startConsul(bin, root) })
	if consulState.err != nil {
		t.Fatalf("testenv: %v", consulState.err)
	}
	return consulState.agent
}

// Server returns the running agent process (nil for PIER_CONSUL_ADDR).
// Restart replaces it.
func (a ConsulAgent) Server() *Server {
	consulState.mu.Lock()
	defer consulState.mu.Unlock()
	return consulState.srv
}

// Restart stops the agent (SIGTERM, as an operator or Nomad would) and
// starts it again on the same ports, node and data directory, then waits
// for its leader and node health as on first start. KV, sessions (with a
// fresh TTL, which the new leader gives every session) and registered
// services survive; blocking queries in flight return early (Consul
// answers them as it shuts down, with no change) or fail with a connection
// error. Not available with PIER_CONSUL_ADDR.
func (a ConsulAgent) Restart(t testing.TB) {
	t.Helper()
	consulState.mu.Lock()
	defer consulState.mu.Unlock()
	if consulState.extern {
		Unavailable(t, "cannot restart the agent at PIER_CONSUL_ADDR")
	}
	if consulState.srv == nil {
		t.Fatal("testenv: Consul(t) was not called")
	}
	terminateServer(consulState.srv)
	srv, err := launchConsul()
	if err != nil {
		t.Fatalf("testenv: restart consul: %v", err)
	}
	consulState.srv = srv
}

func startConsul(bin, root string) error {
	// A free port can be taken between the probe and the bind: retry.
	var err error
	for range 3 {
		var ports []int
		if ports, err = FreePorts(4); err != nil {
			return fmt.Errorf("consul: %w", err)
		}
		consulState.argv = []string{bin, "agent",
			"-config-file", filepath.Join(root, "consul", "test.hcl"),
			"-node", consulNode,
			"-http-port", strconv.Itoa(ports[0]),
			"-server-port", strconv.Itoa(ports[1]),
			"-serf-lan-port", strconv.Itoa(ports[2]),
			"-serf-wan-port", strconv.Itoa(ports[3]),
		}
		consulState.agent = ConsulAgent{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Node: consulNode}
		var srv *Server
		if srv, err = launchConsul(); err == nil {
			consulState.srv = srv
			return nil
		}
	}
	return err
}

// launchConsul starts the agent and waits until it is usable. The first
// start keeps its data in its own scratch directory (removed with it at
// StopAll or exit); later starts reuse that directory.
func launchConsul() (*Server, error) {
	dataDir := consulState.agent.DataDir
	if dataDir == "" {
		dataDir = "data" // relative to the first server's scratch dir
	}
	argv := append(append([]string{}, consulState.argv...), "-data-dir", dataDir)
	// AWS_CA_BUNDLE on this machine breaks HashiCorp agents' start-up.
	srv, err := StartServer("consul", argv, []string{"AWS_CA_BUNDLE=", "CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN="})
	if err != nil {
		return nil, err
	}
	if consulState.agent.DataDir == "" {
		consulState.agent.DataDir = filepath.Join(srv.Dir, "data")
	}
	if err := waitConsul(srv, consulState.agent.Addr); err != nil {
		terminateServer(srv)
		return nil, err
	}
	return srv, nil
}

// waitConsul waits for a leader that has applied its whole log (a
// consistent read succeeds: after a restart, default-mode reads can
// otherwise see the state store still replaying), then for the agent's
// node to be in the catalog with serfHealth passing: sessions need both.
func waitConsul(srv *Server, addr string) error {
	base := "http://" + addr
	leader := func(r *http.Response) bool {
		var s string
		return r.StatusCode == http.StatusOK && json.NewDecoder(r.Body).Decode(&s) == nil && s != ""
	}
	if err := srv.WaitHTTP(base+"/v1/status/leader", consulStartTimeout, leader); err != nil {
		return err
	}
	consistent := func(r *http.Response) bool {
		return r.StatusCode == http.StatusOK || r.StatusCode == http.StatusNotFound
	}
	if err := srv.WaitHTTP(base+"/v1/kv/pier-testenv/ready?consistent", consulStartTimeout, consistent); err != nil {
		return err
	}
	healthy := func(r *http.Response) bool {
		var checks []struct{ CheckID, Status string }
		if r.StatusCode != http.StatusOK || json.NewDecoder(r.Body).Decode(&checks) != nil {
			return false
		}
		for _, c := range checks {
			if c.CheckID == "serfHealth" && c.Status == "passing" {
				return true
			}
		}
		return false
	}
	return srv.WaitHTTP(base+"/v1/health/node/"+consulNode, consulStartTimeout, healthy)
}

// terminateServer stops a server's process group (SIGTERM, then SIGKILL
// after 10s) but, unlike Stop, keeps its directory; the server stays in
// the list StopAll cleans up.
func terminateServer(s *Server) {
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.done
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // stragglers in the group
}
