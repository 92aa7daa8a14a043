package nomaddispatch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/pierhq/pier/jobs"
)

func TestOutput(t *testing.T) {
	const result = `PIER_RESULT {"deployment_id":"dep_1","manifest_key":"m/dep_1.json","duration":5}`
	tests := []struct {
		name    string
		stdout  []string // writes, in order
		stderr  []string
		wantLog string
		wantRes *jobs.BuildResult
		wantErr string
	}{
		{
			name:    "result stripped",
			stdout:  []string{"==> clone\n==> bu", "ild\n" + result + "\n"},
			wantLog: "==> clone\n==> build\n",
			wantRes: &jobs.BuildResult{DeploymentID: "dep_1", ManifestKey: "m/dep_1.json", Duration: 5},
		},
		{
			name:    "result without newline",
			stdout:  []string{"one\n", result},
			wantLog: "one\n",
			wantRes: &jobs.BuildResult{DeploymentID: "dep_1", ManifestKey: "m/dep_1.json", Duration: 5},
		},
		{
			name:    "stderr merged by line, partial line ended",
			stdout:  []string{"out 1\n", result + "\n"},
			stderr:  []string{"err 1\nerr"},
			wantLog: "out 1\nerr 1\nerr\n",
			wantRes: &jobs.BuildResult{DeploymentID: "dep_1", ManifestKey: "m/dep_1.json", Duration: 5},
		},
		{
			name:    "no result",
			stdout:  []string{"flag provided but not defined\n"},
			wantLog: "flag provided but not defined\n",
			wantErr: "no result line",
		},
		{
			name:    "output after the result",
			stdout:  []string{result + "\n", "more\n"},
			wantLog: "more\n",
			wantErr: "output followed the result line",
		},
		{
			name:    "undecodable result",
			stdout:  []string{"PIER_RESULT {not json\n"},
			wantErr: "undecodable result line",
		},
		{
			name:    "last result wins",
			stdout:  []string{`PIER_RESULT {"deployment_id":"fake"}` + "\n", "x\n", result + "\n"},
			wantLog: "x\n",
			wantRes: &jobs.BuildResult{DeploymentID: "dep_1", ManifestKey: "m/dep_1.json", Duration: 5},
		},
		{
			name:    "long line passed on in pieces",
			stdout:  []string{strings.Repeat("a", maxLine+1), "b\n"},
			wantLog: strings.Repeat("a", maxLine+1) + "b\n",
			wantErr: "no result line",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log strings.Builder
			o := newOutput(&log)
			out, errs := o.splitter(true), o.splitter(false)
			for _, s := range tt.stdout {
				out.write([]byte(s))
			}
			for _, s := range tt.stderr {
				errs.write([]byte(s))
			}
			o.flush()
			out.write([]byte("after flush\n")) // dropped: nothing reaches the log after flush
			if got := log.String(); got != tt.wantLog {
				t.Errorf("log = %q, want %q", got, tt.wantLog)
			}
			res, err := o.result()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("result error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *res != *tt.wantRes {
				t.Errorf("result = %+v, want %+v", *res, *tt.wantRes)
			}
		})
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, errors.New("sink closed")
}

func TestOutputFailingLog(t *testing.T) {
	w := &failingWriter{}
	o := newOutput(w)
	s := o.splitter(true)
	s.write([]byte("a\nb\nc\n" + resultMarker + `{"deployment_id":"d"}` + "\n"))
	o.flush()
	if w.n != 1 {
		t.Errorf("writes after a failure = %d, want 1 (the failing one)", w.n)
	}
	if res, err := o.result(); err != nil || res.DeploymentID != "d" {
		t.Errorf("result = %v, %v; a failing log must not lose the result", res, err)
	}
}

func TestPlacementText(t *testing.T) {
	tests := []struct {
		name string
		m    *api.AllocationMetric
		want string
	}{
		{"nil", nil, "no node can run it"},
		{"no nodes", &api.AllocationMetric{NodePool: "builds"}, "no eligible node in node pool builds"},
		{
			"filtered",
			&api.AllocationMetric{NodePool: "default", NodesEvaluated: 2, NodesFiltered: 2,
				ConstraintFiltered: map[string]int{"missing drivers": 1, "${attr.kernel.name} = windows": 1}},
			"no node in node pool default can run it (2 evaluated, 2 filtered, 0 exhausted): ${attr.kernel.name} = windows ×1, missing drivers ×1",
		},
		{
			"exhausted",
			&api.AllocationMetric{NodesEvaluated: 1, NodesExhausted: 1, DimensionExhausted: map[string]int{"memory": 1}},
			"no node can run it (1 evaluated, 0 filtered, 1 exhausted): memory ×1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := placementText(tt.m); got != tt.want {
				t.Errorf("placementText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIDPrefix(t *testing.T) {
	tests := []struct{ in, want string }{
		{"dep_01HX", "dep_01HX"},
		{"a b/c", "a-b-c"},
		{"--x--", "x"},
		{strings.Repeat("x", 60), strings.Repeat("x", 48)},
	}
	for _, tt := range tests {
		if got := idPrefix(tt.in); got != tt.want {
			t.Errorf("idPrefix(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewInvalid(t *testing.T) {
	tests := []struct {
		name string
		addr string
	}{
		{"empty", ""},
		{"no scheme", "127.0.0.1:4646"},
		{"other scheme", "ftp://127.0.0.1"},
		{"no host", "http://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Config{Address: tt.addr}); err == nil {
				t.Errorf("New(%q) succeeded", tt.addr)
			}
		})
	}
}

// TestPayloadTooLarge: the request is refused before Nomad is asked (the
// address answers nothing).
func TestPayloadTooLarge(t *testing.T) {
	d, err := New(Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	req := jobs.BuildRequest{DeploymentID: "dep_big", Env: map[string]string{"BIG": strings.Repeat("x", 17<<10)}, Timeout: time.Minute}
	_, err = d.Dispatch(context.Background(), req, nil)
	if err == nil || !strings.Contains(err.Error(), "payload limit") {
		t.Errorf("Dispatch error = %v, want the payload limit", err)
	}
}
