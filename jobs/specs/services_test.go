package specs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
)

// golden compares got with testdata/name, rewriting it with -update, and
// checks that it parses as HCL.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if _, diags := hclparse.NewParser().ParseHCL(got, name); diags.HasErrors() {
		t.Fatalf("%s does not parse: %v\n%s", name, diags, got)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./jobs/specs -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rendered spec differs from %s (go test ./jobs/specs -update to accept):\n%s", path, got)
	}
}

const prodConfig = `base_domain = "pier.example.com"
consul {
  address = "http://127.0.0.1:8500"
}
`

func TestRenderControlGolden(t *testing.T) {
	tests := []struct {
		name string
		vars ControlVars
	}{
		{
			name: "docker",
			vars: ControlVars{
				Namespace:   "pier",
				Region:      "syd",
				Datacenters: []string{"syd"},
				NodePool:    "control",
				Image:       "ghcr.io/pierhq/pier:1.0.0",
				Config:      prodConfig,
				Env:         map[string]string{"PIER_LOG_LEVEL": "info"},
				Secrets:     true,
				VaultRole:   "pier-control",
			},
		},
		{
			name: "raw_exec",
			vars: ControlVars{
				Driver:   DriverRawExec,
				PierPath: "/opt/pier/pier",
				Count:    1,
				Port:     -1,
				Provider: ProviderNomad,
				Env:      map[string]string{"PIER_CONTROL_LISTEN": "127.0.0.1:${NOMAD_PORT_http}"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderControl(tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "control-"+tt.name+".nomad.hcl", got)
		})
	}
}

func TestRenderEdgeGolden(t *testing.T) {
	tests := []struct {
		name string
		vars EdgeVars
	}{
		{
			name: "docker",
			vars: EdgeVars{
				Namespace: "pier",
				NodePool:  "edge",
				Image:     "ghcr.io/pierhq/pier:1.0.0",
				Port:      80,
				Config:    prodConfig,
				Secrets:   true,
			},
		},
		{
			name: "exec",
			vars: EdgeVars{
				Driver:    DriverExec,
				Port:      -1,
				CacheMB:   512,
				Provider:  ProviderNomad,
				LostAfter: "1h",
				Env:       map[string]string{"PIER_EDGE_ID": "edge-${node.unique.id}"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderEdge(tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "edge-"+tt.name+".nomad.hcl", got)
		})
	}
}

func TestRenderCronGolden(t *testing.T) {
	tests := []struct {
		name string
		vars CronVars
	}{
		{
			name: "docker",
			vars: CronVars{
				JobID:    "pier-cron-shop-cleanup",
				Project:  "shop",
				Name:     "cleanup",
				Schedule: "*/15 * * * *",
				TimeZone: "Australia/Sydney",
				URL:      "https://shop.pier.example.com/api/cron/cleanup",
				Image:    "docker.io/curlimages/curl:8.11.1",
				NodePool: "control",
				Secrets:  true,
				Body:     `{"launch": "${NOMAD_JOB_ID}"}`,
			},
		},
		{
			name: "raw_exec",
			vars: CronVars{
				JobID:    "pier-cron-t",
				Schedule: "0 3 * * *",
				URL:      "http://127.0.0.1:8080/api/nightly",
				Host:     "shop.pier.test",
				Method:   "GET",
				Timeout:  "2.5s",
				Driver:   DriverRawExec,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderCron(tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "cron-"+tt.name+".nomad.hcl", got)
		})
	}
}

func TestRenderServicesInvalid(t *testing.T) {
	ok := func(v ControlVars) ControlVars {
		v.Driver, v.PierPath = DriverRawExec, "/pier"
		return v
	}
	cron := func(f func(*CronVars)) CronVars {
		v := CronVars{JobID: "c", Schedule: "* * * * *", URL: "http://x/", Driver: DriverRawExec}
		f(&v)
		return v
	}
	tests := []struct {
		name   string
		render func() error
		want   string
	}{
		{"control docker without image", func() error { _, err := RenderControl(ControlVars{}); return err }, "needs an image"},
		{"control bad port", func() error { _, err := RenderControl(ok(ControlVars{Port: 70000})); return err }, "want 1-65535"},
		{"control bad provider", func() error { _, err := RenderControl(ok(ControlVars{Provider: "k8s"})); return err }, `unknown service provider "k8s"`},
		{"control negative count", func() error { _, err := RenderControl(ok(ControlVars{Count: -2})); return err }, "count must be positive"},
		{"control job id with space", func() error { _, err := RenderControl(ok(ControlVars{JobID: "pier control"})); return err }, "no spaces"},
		{"control bad env", func() error { _, err := RenderControl(ok(ControlVars{Env: map[string]string{"A-B": "x"}})); return err }, "not a variable name"},
		{"edge relative path", func() error { _, err := RenderEdge(EdgeVars{Driver: DriverExec, PierPath: "pier"}); return err }, "not absolute"},
		{"edge bad lost_after", func() error { _, err := RenderEdge(EdgeVars{Driver: DriverExec, LostAfter: "a day"}); return err }, "lost_after"},
		{"edge image with exec", func() error { _, err := RenderEdge(EdgeVars{Driver: DriverExec, Image: "x"}); return err }, "only used by the docker driver"},
		{"cron no job id", func() error { _, err := RenderCron(cron(func(v *CronVars) { v.JobID = "" })); return err }, "job id is required"},
		{"cron bad schedule", func() error { _, err := RenderCron(cron(func(v *CronVars) { v.Schedule = "hourly" })); return err }, "not a cron expression"},
		{"cron bad url", func() error { _, err := RenderCron(cron(func(v *CronVars) { v.URL = "ftp://x/" })); return err }, "not an http(s) URL"},
		{"cron host with https", func() error {
			_, err := RenderCron(cron(func(v *CronVars) { v.URL, v.Host = "https://x/", "y" }))
			return err
		}, "needs an http URL"},
		{"cron bad zone", func() error {
			_, err := RenderCron(cron(func(v *CronVars) { v.TimeZone = "Mars/Olympus" }))
			return err
		}, "time zone"},
		{"cron bad timeout", func() error { _, err := RenderCron(cron(func(v *CronVars) { v.Timeout = "-1s" })); return err }, "not a duration"},
		{"cron lower-case method", func() error { _, err := RenderCron(cron(func(v *CronVars) { v.Method = "post" })); return err }, "upper-case"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.render()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestValuesStayValues: a value that looks like HCL or a template cannot
// change a spec's structure.
func TestValuesStayValues(t *testing.T) {
	evil := "x\"\n}\njob \"evil\" {\n${foo} %{ if true }"
	out, err := RenderEdge(EdgeVars{Driver: DriverRawExec, PierPath: "/pier", Env: map[string]string{"PIER_BASE_DOMAIN": evil}, Config: evil})
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclparse.NewParser().ParseHCL(out, "edge.nomad.hcl")
	if diags.HasErrors() {
		t.Fatalf("parse: %v\n%s", diags, out)
	}
	if n := strings.Count(string(out), "\njob "); n != 1 {
		t.Errorf("%d job blocks, want 1:\n%s", n, out)
	}
	_ = f
}
