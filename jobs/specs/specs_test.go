package specs

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name string
		vars BuildVars
	}{
		{
			name: "docker",
			vars: BuildVars{
				Image:       "ghcr.io/pierhq/pier:0.3.0",
				Args:        []string{"--s3-endpoint=https://s3.eu-west-1.amazonaws.com", "--s3-bucket=pier-artifacts", "--work-dir=${NOMAD_TASK_DIR}/work"},
				CPU:         2000,
				MemoryMB:    4096,
				Datacenters: []string{"eu-west-1a", "eu-west-1b"},
				NodePool:    "builds",
				Namespace:   "pier",
			},
		},
		{
			name: "raw_exec",
			vars: BuildVars{
				Driver:   DriverRawExec,
				PierPath: "/opt/pier/bin/pier",
				Args:     []string{"--blob-dir", "/var/lib/pier/blobs", "--sandbox", "none"},
				CPU:      200,
				MemoryMB: 512,
			},
		},
		{
			name: "exec_defaults",
			vars: BuildVars{Driver: DriverExec},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "build-"+tt.name+".nomad.hcl")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./jobs/specs -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Render(%s) differs from %s (go test ./jobs/specs -update to accept):\n%s", tt.name, golden, got)
			}
		})
	}
}

func TestRenderInvalid(t *testing.T) {
	tests := []struct {
		name string
		vars BuildVars
		want string
	}{
		{"docker without image", BuildVars{}, "needs an image"},
		{"unknown driver", BuildVars{Driver: "podman"}, `unknown driver "podman"`},
		{"image with raw_exec", BuildVars{Driver: DriverRawExec, Image: "x"}, "only used by the docker driver"},
		{"relative pier path", BuildVars{Driver: DriverExec, PierPath: "bin/pier"}, "not absolute"},
		{"negative memory", BuildVars{Driver: DriverExec, MemoryMB: -1}, "must be positive"},
		{"disk for logs only", BuildVars{Driver: DriverExec, DiskMB: 50}, "must exceed the 50 MB kept for logs"},
		{"empty datacenter", BuildVars{Driver: DriverExec, Datacenters: []string{"dc1", ""}}, "empty datacenter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(tt.vars)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"plain", `"plain"`},
		{`say "hi"`, `"say \"hi\""`},
		{`C:\dir`, `"C:\\dir"`},
		{"a\nb\tc\r", `"a\nb\tc\r"`},
		{"${NOMAD_TASK_DIR}/work", `"$${NOMAD_TASK_DIR}/work"`},
		{"%{ if x }", `"%%{ if x }"`},
		{"$5 and 10%", `"$5 and 10%"`},
		{"bell\a", `"bell\u0007"`},
		{"héllo ✓", `"héllo ✓"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := quote(tt.in); got != tt.want {
				t.Errorf("quote(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestRenderEnv(t *testing.T) {
	v := DefaultBuildVars()
	v.Driver, v.PierPath = DriverRawExec, "/usr/local/bin/pier"
	v.Env = map[string]string{"PIER_S3_SECRET_KEY": `s3cr"et${x}`}
	out, err := Render(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `PIER_S3_SECRET_KEY = "s3cr\"et$${x}"`; !strings.Contains(string(out), want) {
		t.Errorf("rendered spec lacks %s:\n%s", want, out)
	}
	v.Env = map[string]string{"BAD NAME": "x"}
	if _, err := Render(v); err == nil {
		t.Error("Render accepted an invalid variable name")
	}
}
