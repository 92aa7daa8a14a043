package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func write(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pier.hcl")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEmptyConfigIsEmbedded(t *testing.T) {
	c, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir = t.TempDir()
	rt, err := c.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	if rt.Postgres != nil || rt.S3 != nil || rt.Vault != nil || rt.Consul != nil || rt.Nomad != nil {
		t.Errorf("empty config selected a production backend: %+v", rt)
	}
	if !rt.RunControl || !rt.RunEdge || rt.BuildTimeout != 15*time.Minute || rt.Control.Listen != "127.0.0.1:7070" {
		t.Errorf("defaults: %+v", rt)
	}
}

func TestFileAndEnv(t *testing.T) {
	path := write(t, `
data_dir = "/var/lib/pier"
roles    = ["edge"]
control {
  base_domain   = "pier.example.com"
  build_timeout = "5m"
}
edge { listen = "0.0.0.0:80" }
postgres { dsn = "postgres://file" }
s3 {
  endpoint = "http://minio:9000"
  bucket   = "pier"
}
vault  { address = "http://vault:8200" }
consul { address = "http://127.0.0.1:8500" }
nomad {
  address   = "http://nomad:4646"
  driver    = "exec"
  pier_path = "/usr/local/bin/pier"
}
`)
	c, err := Load(path, env(map[string]string{
		"PIER_POSTGRES_DSN":  "postgres://env",
		"VAULT_TOKEN":        "s.root",
		"PIER_S3_SECRET_KEY": "secret",
		"PIER_EDGE_ID":       "edge-syd-1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := c.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"postgres from env over file", rt.Postgres.DSN, "postgres://env"},
		{"vault token from VAULT_TOKEN", rt.Vault.Token, "s.root"},
		{"vault mount default", rt.Vault.Mount, "transit"},
		{"s3 secret from env", rt.S3.SecretKey, "secret"},
		{"s3 region default", rt.S3.Region, "us-east-1"},
		{"edge id from env", rt.Edge.ID, "edge-syd-1"},
		{"edge listen from file", rt.Edge.Listen, "0.0.0.0:80"},
		{"cache dir default", rt.Edge.CacheDir, "/var/lib/pier/edges/edge-syd-1"},
		{"nomad driver", rt.Nomad.Driver, "exec"},
		{"build timeout", rt.BuildTimeout.String(), "5m0s"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if rt.RunControl || !rt.RunEdge {
		t.Errorf("roles: control %v edge %v, want edge only", rt.RunControl, rt.RunEdge)
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax", `data_dir = `, "config"},
		{"unknown field", `dta_dir = "/x"`, "Unsupported argument"},
		{"role", `roles = ["web"]`, "unknown role"},
		{"timeout", `control { build_timeout = "soon" }`, "build_timeout"},
		{"bucket", `s3 { endpoint = "http://x" }`, "s3.bucket"},
		{"vault token", `vault { address = "http://v" }`, "vault.token"},
		{"docker image", "nomad { address = \"http://n\" }\ns3 {\n endpoint = \"http://x\"\n bucket = \"b\"\n}", "nomad.image"},
		{"nomad without s3", `nomad {
  address = "http://n"
  driver = "raw_exec"
  pier_path = "/p"
}`, "s3 section"},
		{"split roles need consul", `roles = ["control"]`, "consul: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(t, tt.src), env(nil))
			if err == nil {
				_, err = c.Runtime()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// nomadForSchedules is a valid nomad block (with its s3) for the
// schedules tests.
const nomadForSchedules = `
nomad {
  address   = "http://n:4646"
  driver    = "raw_exec"
  pier_path = "/usr/local/bin/pier"
  node_pool = "control"
}
s3 {
  endpoint = "http://x"
  bucket   = "b"
}
`

func TestSchedules(t *testing.T) {
	c, err := Load(write(t, nomadForSchedules+`schedules {
  timer       = "nomad"
  control_url = "http://control.service.consul:7070"
}`), env(map[string]string{"PIER_SCHEDULES_TOKEN_KEY": "0123456789abcdef0123456789"}))
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir = t.TempDir()
	rt, err := c.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	want := Schedules{Timer: "nomad", ControlURL: "http://control.service.consul:7070", TokenKey: "0123456789abcdef0123456789",
		Driver: "raw_exec", CurlPath: "/usr/bin/curl", NodePool: "control"}
	if got := rt.Schedules; got.Timer != want.Timer || got.ControlURL != want.ControlURL || got.TokenKey != want.TokenKey ||
		got.Driver != want.Driver || got.CurlPath != want.CurlPath || got.NodePool != want.NodePool {
		t.Errorf("schedules = %+v, want %+v", got, want)
	}

	// No block: the builtin timer.
	c, _ = Load("", env(nil))
	c.DataDir = t.TempDir()
	if rt, err := c.Runtime(); err != nil || rt.Schedules.Timer != "builtin" {
		t.Errorf("default timer = %q (%v), want builtin", rt.Schedules.Timer, err)
	}
	// The environment selects the timer too.
	c, _ = Load(write(t, nomadForSchedules), env(map[string]string{"PIER_SCHEDULES_TIMER": "nomad",
		"PIER_SCHEDULES_CONTROL_URL": "https://c:7070", "PIER_SCHEDULES_TOKEN_KEY": "0123456789abcdef0123456789"}))
	c.DataDir = t.TempDir()
	if rt, err := c.Runtime(); err != nil || rt.Schedules.Timer != "nomad" || rt.Schedules.ControlURL != "https://c:7070" {
		t.Errorf("timer from env = %+v (%v)", rt.Schedules, err)
	}
}

func TestSchedulesInvalid(t *testing.T) {
	const key = "\n  token_key = \"0123456789abcdef0123456789\"\n"
	const url = "\n  control_url = \"http://c:7070\"\n"
	tests := []struct {
		name, src, want string
	}{
		{"unknown timer", `schedules { timer = "cron" }`, `schedules.timer: "cron" (want builtin or nomad)`},
		{"nomad without nomad", `schedules {
  timer = "nomad"` + url + key + `}`, `"nomad" needs the nomad block`},
		{"no control url", nomadForSchedules + `schedules {
  timer = "nomad"` + key + `}`, "schedules.control_url"},
		{"control url not http", nomadForSchedules + `schedules {
  timer = "nomad"
  control_url = "control:7070"` + key + `}`, `schedules.control_url: "control:7070" is not an http(s) URL`},
		{"short token key", nomadForSchedules + `schedules {
  timer = "nomad"` + url + `
  token_key = "short"
}`, "schedules.token_key: use at least 24"},
		{"docker without image", nomadForSchedules + `schedules {
  timer = "nomad"
  driver = "docker"` + url + key + `}`, "schedules.image: required with the docker driver"},
		{"image without docker", nomadForSchedules + `schedules {
  timer = "nomad"
  image = "curl"` + url + key + `}`, "only the docker driver uses an image"},
		{"bad driver", nomadForSchedules + `schedules {
  timer = "nomad"
  driver = "podman"` + url + key + `}`, `schedules.driver: "podman"`},
		{"relative curl", nomadForSchedules + `schedules {
  timer = "nomad"
  curl_path = "curl"` + url + key + `}`, `schedules.curl_path: "curl" is not an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(t, tt.src), env(nil))
			if err == nil {
				c.DataDir = t.TempDir()
				_, err = c.Runtime()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
