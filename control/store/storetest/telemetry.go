package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
)

func testTelemetry(t *testing.T, open func(t *testing.T) control.Store) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	entry := func(project, dep, level, msg string, at time.Duration) control.LogEntry {
		return control.LogEntry{ProjectID: project, DeploymentID: dep, Edge: "edge-1", Time: t0.Add(at),
			Kind: "console", Level: level, RequestID: "req", Message: msg}
	}
	t.Run("LogsQuery", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		in := []control.LogEntry{
			entry("p1", "d1", "info", "hello World", 0),
			entry("p1", "d1", "error", "boom: 100% broken_thing", time.Second),
			entry("p1", "d2", "warn", "careful", 2*time.Second),
			entry("p2", "d3", "info", "other project", 3*time.Second),
			{ProjectID: "p1", DeploymentID: "d2", Edge: "edge-2", Time: t0.Add(4 * time.Second), Kind: "access",
				Level: "info", RequestID: "r9", Message: "GET /x 200", Method: "GET", Host: "a.localhost", Path: "/x",
				Status: 200, DurationUS: 1234, Start: "cold"},
		}
		if err := s.AppendLogs(ctx, in); err != nil {
			t.Fatalf("AppendLogs: %v", err)
		}
		for i := 1; i < len(in); i++ {
			if in[i].ID <= in[i-1].ID {
				t.Fatalf("IDs not ascending: %d then %d", in[i-1].ID, in[i].ID)
			}
		}
		msgs := func(es []control.LogEntry) []string {
			var out []string
			for _, e := range es {
				out = append(out, e.Message)
			}
			return out
		}
		tests := []struct {
			name string
			q    control.LogQuery
			want []string
		}{
			{"project", control.LogQuery{ProjectID: "p1"}, []string{"hello World", "boom: 100% broken_thing", "careful", "GET /x 200"}},
			{"deployment", control.LogQuery{ProjectID: "p1", DeploymentID: "d2"}, []string{"careful", "GET /x 200"}},
			{"range", control.LogQuery{ProjectID: "p1", Since: t0.Add(time.Second), Until: t0.Add(4 * time.Second)}, []string{"boom: 100% broken_thing", "careful"}},
			{"levels", control.LogQuery{ProjectID: "p1", Levels: []string{"error", "warn"}}, []string{"boom: 100% broken_thing", "careful"}},
			{"text case-insensitive", control.LogQuery{ProjectID: "p1", Text: "WORLD"}, []string{"hello World"}},
			{"text with wildcards is literal", control.LogQuery{ProjectID: "p1", Text: "100%"}, []string{"boom: 100% broken_thing"}},
			{"underscore is literal", control.LogQuery{ProjectID: "p1", Text: "n_t"}, []string{"boom: 100% broken_thing"}},
			{"newest within limit", control.LogQuery{ProjectID: "p1", Limit: 2}, []string{"careful", "GET /x 200"}},
			{"after id oldest first", control.LogQuery{ProjectID: "p1", AfterID: in[0].ID, Limit: 2}, []string{"boom: 100% broken_thing", "careful"}},
			{"unknown project", control.LogQuery{ProjectID: "nope"}, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.QueryLogs(ctx, tc.q)
				if err != nil {
					t.Fatalf("QueryLogs: %v", err)
				}
				if g := msgs(got); !equalStrings(g, tc.want) {
					t.Errorf("got %q, want %q", g, tc.want)
				}
			})
		}
		got, err := s.QueryLogs(ctx, control.LogQuery{ProjectID: "p1", DeploymentID: "d2", Text: "GET"})
		if err != nil || len(got) != 1 {
			t.Fatalf("QueryLogs access: %v %v", got, err)
		}
		want := in[4]
		if g := got[0]; g.ID != want.ID || !g.Time.Equal(want.Time) || g.Edge != want.Edge || g.Method != "GET" || g.Host != want.Host ||
			g.Path != "/x" || g.Status != 200 || g.DurationUS != 1234 || g.Start != "cold" || g.RequestID != "r9" || g.Kind != "access" {
			t.Errorf("access record round trip: got %+v, want %+v", g, want)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		rows := []control.MetricRow{
			{ProjectID: "p1", DeploymentID: "d1", Edge: "edge-1", Bucket: t0, Data: []byte(`{"a":1}`)},
			{ProjectID: "p1", DeploymentID: "d1", Edge: "edge-2", Bucket: t0, Data: []byte{0, 1, 2, 0xff}},
			{ProjectID: "p1", DeploymentID: "d2", Edge: "edge-1", Bucket: t0.Add(10 * time.Second), Data: []byte("x")},
			{ProjectID: "p2", DeploymentID: "d3", Edge: "edge-1", Bucket: t0, Data: []byte("y")},
		}
		if err := s.AppendMetrics(ctx, rows); err != nil {
			t.Fatalf("AppendMetrics: %v", err)
		}
		got, err := s.QueryMetrics(ctx, "p1", "", t0, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || !bytes.Equal(got[1].Data, rows[1].Data) || !got[2].Bucket.Equal(rows[2].Bucket) || got[2].DeploymentID != "d2" || got[0].Edge != "edge-1" {
			t.Errorf("QueryMetrics(p1) = %+v", got)
		}
		got, _ = s.QueryMetrics(ctx, "p1", "d2", t0, t0.Add(time.Minute))
		if len(got) != 1 || got[0].DeploymentID != "d2" {
			t.Errorf("QueryMetrics(p1, d2) = %+v", got)
		}
		got, _ = s.QueryMetrics(ctx, "p1", "", t0.Add(time.Second), t0.Add(10*time.Second))
		if len(got) != 0 {
			t.Errorf("range excludes both ends' outsiders: got %+v", got)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		if err := s.AppendLogs(ctx, []control.LogEntry{entry("p1", "d1", "info", "old", 0), entry("p1", "d1", "info", "new", time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendMetrics(ctx, []control.MetricRow{
			{ProjectID: "p1", DeploymentID: "d1", Edge: "e", Bucket: t0, Data: []byte("old")},
			{ProjectID: "p1", DeploymentID: "d1", Edge: "e", Bucket: t0.Add(time.Hour), Data: []byte("new")},
		}); err != nil {
			t.Fatal(err)
		}
		n, err := s.PruneTelemetry(ctx, t0.Add(time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("PruneTelemetry = %d, %v; want 2", n, err)
		}
		logs, _ := s.QueryLogs(ctx, control.LogQuery{ProjectID: "p1"})
		ms, _ := s.QueryMetrics(ctx, "p1", "", t0.Add(-time.Hour), t0.Add(2*time.Hour))
		if len(logs) != 1 || logs[0].Message != "new" || len(ms) != 1 || string(ms[0].Data) != "new" {
			t.Errorf("after prune: logs %+v, metrics %+v", logs, ms)
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
