package ops

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/jobs/specs"
	"github.com/pierhq/pier/tests/testenv"
)

// TestNomadConfigsValidate: `nomad config validate` accepts every agent's
// full set of files (common file, its region's file, and a node file like
// the one terraform writes), with real certificates in place.
func TestNomadConfigsValidate(t *testing.T) {
	bin := testenv.Tool(t, "nomad")
	p := newPKI(t)
	p.issue(t, "nomad-server", "server.global.nomad")
	p.issue(t, "nomad-client", "client.global.nomad")
	dir := t.TempDir()
	server := agentConfig(t, dir, "nomad/server.hcl", p.Dir)
	client := agentConfig(t, dir, "nomad/client.hcl", p.Dir)
	node := writeFile(t, dir, "node.hcl", `name = "node-1"
advertise {
  http = "10.0.1.10"
  rpc  = "10.0.1.10"
  serf = "10.0.1.10"
}
`)
	tests := []struct{ name, common, region string }{
		{"syd server", server, "syd-server.hcl"},
		{"syd control", client, "syd-control.hcl"},
		{"syd builds", client, "syd-builds.hcl"},
		{"syd edge", client, "syd-edge.hcl"},
		{"mel edge", client, "mel-edge.hcl"},
		{"sgp edge", client, "sgp-edge.hcl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(t, nil, bin, "config", "validate", tt.common,
				filepath.Join(testenv.RepoRoot(t), "nomad", "regions", tt.region), node)
			if strings.Contains(out, "WARNING") {
				t.Errorf("warnings:\n%s", out)
			}
		})
	}
}

// nomadACL is a Nomad server started from nomad/server.hcl: TLS on the
// API and RPC, ACLs on and bootstrapped.
type nomadACL struct {
	bin, addr, mgmt string
	pki             *pki
	hc              *http.Client
}

const nomadServerOverlay = `name      = "pier-ops-nomad"
data_dir  = %[1]q
bind_addr = "127.0.0.1"
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
ports {
  http = %[2]d
  rpc  = %[3]d
  serf = %[4]d
}
server {
  bootstrap_expect = 1
}
# No Consul here: keep the agent from looking for one.
consul {
  address          = "127.0.0.1:1"
  auto_advertise   = false
  server_auto_join = false
  client_auto_join = false
}
`

func startNomadACL(t *testing.T) *nomadACL {
	t.Helper()
	n := &nomadACL{bin: testenv.Tool(t, "nomad"), pki: newPKI(t)}
	n.pki.issue(t, "nomad-server", "server.global.nomad")
	n.hc = n.pki.client()
	dir := t.TempDir()
	p := ports(t, 3)
	n.addr = fmt.Sprintf("https://127.0.0.1:%d", p[0])
	cfg := agentConfig(t, dir, "nomad/server.hcl", n.pki.Dir)
	overlay := writeFile(t, dir, "test.hcl", fmt.Sprintf(nomadServerOverlay, filepath.Join(dir, "data"), p[0], p[1], p[2]))
	srv, err := testenv.StartServer("nomad-acl", []string{n.bin, "agent", "-config", cfg, "-config", overlay}, agentEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAgent(t, srv) })
	waitFor(t, 60*time.Second, "a nomad leader", func() bool {
		select {
		case <-srv.Exited():
			t.Fatalf("nomad exited:\n%s", srv.Log())
		default:
		}
		req, _ := http.NewRequest("GET", n.addr+"/v1/status/leader", nil)
		resp, err := n.hc.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var leader string
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&leader) == nil && leader != ""
	})
	n.mgmt = uuid()
	waitFor(t, 30*time.Second, "the ACL bootstrap", func() bool {
		code, _ := api(t, n.hc, "POST", n.addr+"/v1/acl/bootstrap", "X-Nomad-Token", "", map[string]string{"BootstrapSecret": n.mgmt}, nil)
		return code == 200
	})
	return n
}

// cli runs the nomad CLI against the server with token.
func (n *nomadACL) cli(t *testing.T, token string, args ...string) string {
	t.Helper()
	return run(t, []string{"NOMAD_ADDR=" + n.addr, "NOMAD_CACERT=" + filepath.Join(n.pki.Dir, "ca.pem"), "NOMAD_TOKEN=" + token}, n.bin, args...)
}

// token applies nomad/acl/<name>.policy.hcl as docs/operations.md does and
// returns the secret of a new token with it.
func (n *nomadACL) token(t *testing.T, name string) string {
	t.Helper()
	n.cli(t, n.mgmt, "acl", "policy", "apply", "-description", "test", name,
		filepath.Join(testenv.RepoRoot(t), "nomad", "acl", name+".policy.hcl"))
	out := n.cli(t, n.mgmt, "acl", "token", "create", "-name", "test-"+name, "-policy", name, "-json")
	var tok struct{ SecretID string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.SecretID == "" {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	return tok.SecretID
}

// TestNomadPolicies: the namespaces, node pools and ACL policies of nomad/
// load into a Nomad server with ACLs and TLS on (through the CLI, as
// docs/operations.md has them), and grant what each holder needs and no
// more.
func TestNomadPolicies(t *testing.T) {
	t.Parallel()
	n := startNomadACL(t)
	root := testenv.RepoRoot(t)
	for _, f := range []string{"pier.hcl", "pier-builds.hcl"} {
		n.cli(t, n.mgmt, "namespace", "apply", filepath.Join(root, "nomad", "namespaces", f))
	}
	for _, f := range []string{"control.hcl", "builds.hcl", "edge.hcl"} {
		n.cli(t, n.mgmt, "node", "pool", "apply", filepath.Join(root, "nomad", "pools", f))
	}
	control := n.token(t, "pier-control")
	deploy := n.token(t, "pier-deploy")
	readonly := n.token(t, "pier-readonly")

	build, err := specs.Render(specs.BuildVars{Driver: specs.DriverExec, Namespace: "pier-builds", NodePool: "builds"})
	if err != nil {
		t.Fatal(err)
	}
	edgeSpec, err := specs.RenderEdge(specs.EdgeVars{Driver: specs.DriverExec, Namespace: "pier", NodePool: "edge", Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	// The server has Vault enabled (server.hcl), so the vault block of the
	// control job is checked here.
	controlSpec, err := specs.RenderControl(specs.ControlVars{Image: "ghcr.io/pierhq/pier:1.0.0", Namespace: "pier",
		NodePool: "control", Secrets: true, VaultRole: "pier-control", Config: "log_level = \"info\"\n"})
	if err != nil {
		t.Fatal(err)
	}
	buildInPier, err := specs.Render(specs.BuildVars{Driver: specs.DriverExec, Namespace: "pier", NodePool: "builds"})
	if err != nil {
		t.Fatal(err)
	}
	// schedules.timer = "nomad": control's periodic jobs, beside the builds.
	cronSpec, err := specs.RenderCron(specs.CronVars{JobID: "pier-cron-shop-cleanup-1a2b3c4d", Namespace: "pier-builds",
		NodePool: "builds", Schedule: "*/5 * * * *", URL: "http://control.service.consul:7070/v1/projects/shop/schedules/cleanup/run",
		Body: `{"launch": "${NOMAD_JOB_ID}"}`, Driver: specs.DriverExec, Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	parse := func(spec []byte) map[string]any {
		var job map[string]any
		code, body := api(t, n.hc, "POST", n.addr+"/v1/jobs/parse", "X-Nomad-Token", n.mgmt, map[string]any{"JobHCL": string(spec)}, &job)
		if code != 200 {
			t.Fatalf("parse: %d %s", code, body)
		}
		return job
	}
	register := func(job map[string]any) (string, map[string]any) {
		ns := job["Namespace"].(string)
		return "/v1/jobs?namespace=" + ns, map[string]any{"Job": job}
	}
	buildPath, buildBody := register(parse(build))
	edgePath, edgeBody := register(parse(edgeSpec))
	controlPath, controlBody := register(parse(controlSpec))
	wrongPath, wrongBody := register(parse(buildInPier))
	cronPath, cronBody := register(parse(cronSpec))
	cronSecret := map[string]any{"Namespace": "pier-builds", "Path": "nomad/jobs/pier-cron-shop-cleanup-1a2b3c4d",
		"Items": map[string]string{specs.CronSecretKey: "pcron_x"}}
	buildSecret := map[string]any{"Namespace": "pier-builds", "Path": "nomad/jobs/pier-build", "Items": map[string]string{"X": "y"}}
	secret := map[string]any{"Namespace": "pier", "Path": "nomad/jobs/pier-edge", "Items": map[string]string{"PIER_S3_SECRET_KEY": "s3cret"}}

	tests := []struct {
		name         string
		token        string
		method, path string
		body         any
		want         int
	}{
		{"deploy writes the edge's secrets", deploy, "PUT", "/v1/var/nomad/jobs/pier-edge?namespace=pier", secret, 200},
		{"deploy runs the edge job", deploy, "POST", edgePath, edgeBody, 200},
		{"deploy runs the control job", deploy, "POST", controlPath, controlBody, 200},
		{"deploy cannot run jobs in the builds namespace", deploy, "POST", buildPath, buildBody, 403},
		{"control registers the build job", control, "POST", buildPath, buildBody, 200},
		{"control dispatches a build", control, "POST", "/v1/job/pier-build/dispatch?namespace=pier-builds",
			map[string]any{"Payload": "e30=", "Meta": map[string]string{"deployment_id": "dep_1"}}, 200},
		{"control parses the build job", control, "POST", "/v1/jobs/parse?namespace=pier-builds", map[string]any{"JobHCL": string(build)}, 200},
		{"control follows its builds", control, "GET", "/v1/job/pier-build/allocations?namespace=pier-builds", nil, 200},
		{"control follows evaluations", control, "GET", "/v1/job/pier-build/evaluations?namespace=pier-builds", nil, 200},
		{"control cannot run jobs in the pier namespace", control, "POST", wrongPath, wrongBody, 403},
		{"control writes a periodic job's token", control, "PUT", "/v1/var/nomad/jobs/pier-cron-shop-cleanup-1a2b3c4d?namespace=pier-builds", cronSecret, 200},
		{"control reads a periodic job's token", control, "GET", "/v1/var/nomad/jobs/pier-cron-shop-cleanup-1a2b3c4d?namespace=pier-builds", nil, 200},
		{"control registers a periodic job", control, "POST", cronPath, cronBody, 200},
		{"control lists the periodic jobs", control, "GET", "/v1/jobs?namespace=pier-builds&prefix=pier-cron-&meta=true", nil, 200},
		{"control purges a periodic job", control, "DELETE", "/v1/job/pier-cron-shop-cleanup-1a2b3c4d?namespace=pier-builds&purge=true", nil, 200},
		{"control deletes a periodic job's token", control, "DELETE", "/v1/var/nomad/jobs/pier-cron-shop-cleanup-1a2b3c4d?namespace=pier-builds", nil, 204},
		{"control cannot write other jobs' variables", control, "PUT", "/v1/var/nomad/jobs/pier-build?namespace=pier-builds", buildSecret, 403},
		{"control cannot stop the edges", control, "DELETE", "/v1/job/pier-edge?namespace=pier", nil, 403},
		{"control cannot read the edge's secrets", control, "GET", "/v1/var/nomad/jobs/pier-edge?namespace=pier", nil, 403},
		{"control cannot see the edge job", control, "GET", "/v1/job/pier-edge?namespace=pier", nil, 403},
		{"readonly sees the edge job", readonly, "GET", "/v1/job/pier-edge?namespace=pier", nil, 200},
		{"readonly sees the builds", readonly, "GET", "/v1/jobs?namespace=pier-builds", nil, 200},
		{"readonly cannot read secrets", readonly, "GET", "/v1/var/nomad/jobs/pier-edge?namespace=pier", nil, 403},
		{"readonly cannot stop a job", readonly, "DELETE", "/v1/job/pier-edge?namespace=pier", nil, 403},
		{"no token sees nothing", "", "GET", "/v1/jobs?namespace=pier", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := api(t, n.hc, tt.method, n.addr+tt.path, "X-Nomad-Token", tt.token, tt.body, nil)
			if code != tt.want {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, code, strings.TrimSpace(body), tt.want)
			}
		})
	}
}
