package ops

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// consulACL is a Consul datacenter started from the repository's
// consul/server.hcl and consul/client.hcl: one server (HTTPS API, TLS RPC,
// ACLs deny by default) and one client agent joined to it over TLS with
// auto_encrypt, as on every Pier machine.
type consulACL struct {
	bin        string
	pki        *pki
	Management string // the initial management token
	ServerHTTP string // http://127.0.0.1:P (loopback HTTP of the server)
	HTTPS      string // https://127.0.0.1:P (the server's HTTPS API)
	ClientHTTP string // http://127.0.0.1:P (loopback HTTP of the client agent)
	ClientNode string
}

// consulTestOverlay is the test's settings over server.hcl or client.hcl:
// one server, loopback, random ports, fast elections, the tokens.
const consulServerOverlay = `node_name        = "pier-ops-server"
bootstrap_expect = 1
data_dir         = %[1]q
bind_addr        = "127.0.0.1"
advertise_addr   = "127.0.0.1"
addresses {
  https = "127.0.0.1"
}
ports {
  http     = %[2]d
  https    = %[3]d
  server   = %[4]d
  serf_lan = %[5]d
  serf_wan = %[6]d
  grpc_tls = -1
  dns      = -1
}
acl {
  tokens {
    initial_management = %[7]q
    agent              = %[7]q
  }
}
consul {
  raft {
    election_timeout     = "100ms"
    heartbeat_timeout    = "100ms"
    leader_lease_timeout = "50ms"
  }
}
`

const consulClientOverlay = `node_name      = "pier-ops-client"
data_dir       = %[1]q
bind_addr      = "127.0.0.1"
advertise_addr = "127.0.0.1"
retry_join     = ["127.0.0.1:%[4]d"]
# auto_encrypt asks the servers for a certificate on this port.
ports {
  http     = %[2]d
  serf_lan = %[3]d
  serf_wan = -1
  dns      = -1
  server   = %[6]d
}
acl {
  tokens {
    agent = %[5]q
  }
}
`

// startConsulACL starts the server and the client, and waits until the
// client's node is healthy in the catalog.
func startConsulACL(t *testing.T) *consulACL {
	t.Helper()
	c := &consulACL{bin: testenv.Tool(t, "consul"), pki: newPKI(t), Management: uuid(), ClientNode: "pier-ops-client"}
	c.pki.issue(t, "consul-server", "server.pier.consul")
	dir := t.TempDir()
	p := ports(t, 7)
	c.ServerHTTP = fmt.Sprintf("http://127.0.0.1:%d", p[0])
	c.HTTPS = fmt.Sprintf("https://127.0.0.1:%d", p[1])
	c.ClientHTTP = fmt.Sprintf("http://127.0.0.1:%d", p[5])

	serverCfg := agentConfig(t, dir, "consul/server.hcl", c.pki.Dir)
	serverOverlay := writeFile(t, dir, "server-test.hcl", fmt.Sprintf(consulServerOverlay,
		filepath.Join(dir, "server-data"), p[0], p[1], p[2], p[3], p[4], c.Management))
	srv, err := testenv.StartServer("consul-acl-server", []string{c.bin, "agent",
		"-config-file", serverCfg, "-config-file", serverOverlay}, agentEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAgent(t, srv) })
	// The HTTPS API is up and answering with a leader.
	hc := c.pki.client()
	leader := func(r *http.Response) bool {
		var s string
		return r.StatusCode == http.StatusOK && json.NewDecoder(r.Body).Decode(&s) == nil && s != ""
	}
	if err := srv.WaitHTTP(c.ServerHTTP+"/v1/status/leader", 60*time.Second, leader); err != nil {
		t.Fatal(err)
	}

	clientCfg := agentConfig(t, dir, "consul/client.hcl", c.pki.Dir)
	clientOverlay := writeFile(t, dir, "client-test.hcl", fmt.Sprintf(consulClientOverlay,
		filepath.Join(dir, "client-data"), p[5], p[6], p[3], c.Management, p[2]))
	cl, err := testenv.StartServer("consul-acl-client", []string{c.bin, "agent",
		"-config-file", clientCfg, "-config-file", clientOverlay}, agentEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAgent(t, cl) })
	waitFor(t, 60*time.Second, "the client agent's node to be healthy in the catalog", func() bool {
		var checks []struct{ CheckID, Status string }
		code, _ := api(t, hc, "GET", c.HTTPS+"/v1/health/node/"+c.ClientNode, "X-Consul-Token", c.Management, nil, &checks)
		for _, ch := range checks {
			if code == 200 && ch.CheckID == "serfHealth" && ch.Status == "passing" {
				return true
			}
		}
		select {
		case <-cl.Exited():
			t.Fatalf("consul client exited:\n%s", cl.Log())
		default:
		}
		return false
	})
	return c
}

// stopAgent stops a test agent, showing its log if the test failed.
func stopAgent(t *testing.T, s *testenv.Server) {
	if t.Failed() {
		t.Logf("%s log:\n%s", s.Name, s.Log())
	}
	s.Stop()
}

// cli runs the consul CLI against the server's HTTPS API with token.
func (c *consulACL) cli(t *testing.T, token string, args ...string) string {
	t.Helper()
	return run(t, []string{"CONSUL_HTTP_ADDR=" + c.HTTPS, "CONSUL_CACERT=" + filepath.Join(c.pki.Dir, "ca.pem"),
		"CONSUL_HTTP_TOKEN=" + token}, c.bin, args...)
}

// policyToken loads consul/policies/<name>.hcl the way
// docs/operations.md does, and returns the secret of a new token with it.
func (c *consulACL) policyToken(t *testing.T, name string) string {
	t.Helper()
	rules := filepath.Join(testenv.RepoRoot(t), "consul", "policies", name+".hcl")
	if _, err := runErr([]string{"CONSUL_HTTP_ADDR=" + c.HTTPS, "CONSUL_CACERT=" + filepath.Join(c.pki.Dir, "ca.pem"),
		"CONSUL_HTTP_TOKEN=" + c.Management}, c.bin, "acl", "policy", "read", "-name", name); err != nil {
		c.cli(t, c.Management, "acl", "policy", "create", "-name", name, "-rules", "@"+rules)
	}
	out := c.cli(t, c.Management, "acl", "token", "create", "-description", "test "+name, "-policy-name", name, "-format", "json")
	var tok struct{ SecretID string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.SecretID == "" {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	return tok.SecretID
}

// TestConsulConfigsValidate: `consul validate` accepts each agent's full
// set of files.
func TestConsulConfigsValidate(t *testing.T) {
	bin := testenv.Tool(t, "consul")
	root := testenv.RepoRoot(t)
	// A retry_join/encrypt overlay like the one terraform writes per node.
	node := writeFile(t, t.TempDir(), "node.hcl", `node_name = "syd-1"
retry_join = ["provider=aws tag_key=pier-consul tag_value=server"]
encrypt = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="
`)
	for _, f := range []string{"server.hcl", "client.hcl"} {
		t.Run(f, func(t *testing.T) {
			run(t, nil, bin, "validate", filepath.Join(root, "consul", f), node)
		})
	}
}

// TestConsulPolicies: the policies load into an agent with ACLs on, and
// they are what Pier's edge and control need and no more: an edge can
// read the pointers, write its own readiness and membership keys and
// register itself as pier-edge, but cannot move a pointer, take a cutover
// lock or register any other service; control can do the cutover.
func TestConsulPolicies(t *testing.T) {
	t.Parallel()
	c := startConsulACL(t)
	hc := c.pki.client()
	edge := c.policyToken(t, "pier-edge")
	control := c.policyToken(t, "pier-control")

	ptr := map[string]string{"project_name": "site", "deployment_id": "dep_1"}
	tests := []struct {
		name   string
		token  string
		method string
		path   string
		body   any
		want   int
	}{
		{"control writes a pointer", control, "PUT", "/v1/kv/pier/projects/prj_1/production", ptr, 200},
		{"edge reads a pointer", edge, "GET", "/v1/kv/pier/projects/prj_1/production", nil, 200},
		{"edge cannot write a pointer", edge, "PUT", "/v1/kv/pier/projects/prj_1/production", ptr, 403},
		{"edge cannot delete a pointer", edge, "DELETE", "/v1/kv/pier/projects/prj_1/production", nil, 403},
		{"edge cannot announce", edge, "PUT", "/v1/kv/pier/wanted/dep_2", map[string]string{}, 403},
		{"edge cannot take a cutover lock", edge, "PUT", "/v1/kv/pier/locks/project/prj_1", map[string]string{}, 403},
		{"edge writes its readiness", edge, "PUT", "/v1/kv/pier/deployments/dep_1/ready/edge-a", map[string]string{"ready_at": "now"}, 200},
		{"edge writes its membership", edge, "PUT", "/v1/kv/pier/edges/edge-a", map[string]string{"id": "edge-a"}, 200},
		{"edge cannot write outside pier/", edge, "PUT", "/v1/kv/vault/core", map[string]string{}, 403},
		{"edge creates a session", edge, "PUT", "/v1/session/create", map[string]any{"Name": "pier-edge/edge-a", "TTL": "15s", "Node": "pier-ops-client"}, 200},
		{"edge cannot register another service", edge, "PUT", "/v1/catalog/register",
			map[string]any{"Node": "pier-ops-client", "Address": "127.0.0.1", "Service": map[string]any{"Service": "pier-control"}}, 403},
		{"edge cannot read the ACL tokens", edge, "GET", "/v1/acl/tokens", nil, 403},
		{"no token reads nothing", "", "GET", "/v1/kv/pier/projects/prj_1/production", nil, 403},
		{"no token writes nothing", "", "PUT", "/v1/kv/pier/projects/prj_1/production", ptr, 403},
		{"control takes the cutover lock key", control, "PUT", "/v1/kv/pier/locks/project/prj_1", map[string]string{}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := api(t, hc, tt.method, c.HTTPS+tt.path, "X-Consul-Token", tt.token, tt.body, nil)
			if code != tt.want {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, code, strings.TrimSpace(body), tt.want)
			}
		})
	}
	// Registering pier-edge through the client agent, as RegisterEdge does.
	reg := map[string]any{"ID": "edge-a", "Name": "pier-edge", "Port": 8080,
		"Check": map[string]any{"CheckID": "pier-edge:edge-a", "TTL": "30s"}}
	agent := &http.Client{Timeout: 10 * time.Second}
	if code, body := api(t, agent, "PUT", c.ClientHTTP+"/v1/agent/service/register", "X-Consul-Token", edge, reg, nil); code != 200 {
		t.Errorf("edge registering pier-edge = %d %s, want 200", code, body)
	}
	reg["Name"], reg["ID"] = "pier-control", "not-an-edge"
	if code, _ := api(t, agent, "PUT", c.ClientHTTP+"/v1/agent/service/register", "X-Consul-Token", edge, reg, nil); code != 403 {
		t.Errorf("edge registering pier-control = %d, want 403", code)
	}
}
