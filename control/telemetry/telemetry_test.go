package telemetry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

// memStore is an in-memory control.Telemetry (the real ones pass
// storetest).
type memStore struct {
	mu      sync.Mutex
	logs    []control.LogEntry
	metrics []control.MetricRow
}

func (m *memStore) AppendLogs(_ context.Context, es []control.LogEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range es {
		e.ID = int64(len(m.logs) + 1)
		m.logs = append(m.logs, e)
	}
	return nil
}

func (m *memStore) QueryLogs(_ context.Context, q control.LogQuery) ([]control.LogEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []control.LogEntry
	for _, e := range m.logs {
		if e.ProjectID == q.ProjectID && e.ID > q.AfterID {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memStore) AppendMetrics(_ context.Context, rows []control.MetricRow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.metrics = append(m.metrics, rows...)
	return nil
}

func (m *memStore) QueryMetrics(_ context.Context, project, dep string, since, until time.Time) ([]control.MetricRow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []control.MetricRow
	for _, r := range m.metrics {
		if r.ProjectID == project && (dep == "" || r.DeploymentID == dep) && !r.Bucket.Before(since) && r.Bucket.Before(until) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memStore) PruneTelemetry(_ context.Context, before time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.metrics)
	kept := m.metrics[:0]
	for _, r := range m.metrics {
		if !r.Bucket.Before(before) {
			kept = append(kept, r)
		}
	}
	m.metrics = kept
	return int64(n - len(kept)), nil
}

func sketchOf(t *testing.T, vals []float64) []byte {
	t.Helper()
	s, err := ddsketch.NewDefaultDDSketch(0.01)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vals {
		_ = s.Add(v)
	}
	var b []byte
	s.Encode(&b, false)
	return b
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestIngestRefusesBadBatches(t *testing.T) {
	okLog := edge.LogRecord{Time: t0, Kind: edge.LogConsole, Level: "info", ProjectID: "p", DeploymentID: "d", Message: "hi"}
	okBucket := edge.MetricBucket{ProjectID: "p", DeploymentID: "d", Start: t0, WidthSeconds: 10, Requests: 1}
	with := func(f func(b *edge.TelemetryBatch)) *edge.TelemetryBatch {
		b := &edge.TelemetryBatch{Edge: "e1", Logs: []edge.LogRecord{okLog}, Metrics: []edge.MetricBucket{okBucket}}
		f(b)
		return b
	}
	tests := []struct {
		name  string
		batch *edge.TelemetryBatch
		field string
	}{
		{"no edge", with(func(b *edge.TelemetryBatch) { b.Edge = "" }), "edge"},
		{"long edge", with(func(b *edge.TelemetryBatch) { b.Edge = strings.Repeat("e", 129) }), "edge"},
		{"bad kind", with(func(b *edge.TelemetryBatch) { b.Logs[0].Kind = "syslog" }), "logs[0].kind"},
		{"bad level", with(func(b *edge.TelemetryBatch) { b.Logs[0].Level = "loud" }), "logs[0].level"},
		{"no project", with(func(b *edge.TelemetryBatch) { b.Logs[0].ProjectID = "" }), "logs[0]"},
		{"no time", with(func(b *edge.TelemetryBatch) { b.Logs[0].Time = time.Time{} }), "logs[0].time"},
		{"no width", with(func(b *edge.TelemetryBatch) { b.Metrics[0].WidthSeconds = 0 }), "metrics[0]"},
		{"corrupt sketch", with(func(b *edge.TelemetryBatch) { b.Metrics[0].Latency = []byte{0xff, 0x01, 0x02} }), "metrics[0].latency"},
		{"too many logs", with(func(b *edge.TelemetryBatch) { b.Logs = make([]edge.LogRecord, 3) }), "logs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &memStore{}
			s := New(Config{MaxBatchLogs: 2}, st)
			err := s.Ingest(t.Context(), tc.batch)
			var ve *control.ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field {
				t.Fatalf("Ingest = %v, want a validation error on %s", err, tc.field)
			}
			if len(st.logs)+len(st.metrics) != 0 {
				t.Error("a refused batch was partly stored")
			}
		})
	}
	st := &memStore{}
	long := with(func(b *edge.TelemetryBatch) { b.Logs[0].Message = strings.Repeat("x", 10000) })
	if err := New(Config{MaxMessage: 100}, st).Ingest(t.Context(), long); err != nil {
		t.Fatal(err)
	}
	if len(st.logs) != 1 || len(st.logs[0].Message) != 100 || st.logs[0].Edge != "e1" || len(st.metrics) != 1 {
		t.Errorf("stored %+v", st.logs)
	}
}

// Buckets from two edges merge: counts add up, the merged sketches'
// percentiles are within 1 % of the exact percentiles of all values, and
// steps group buckets by start.
func TestMetricsMergeEdges(t *testing.T) {
	st := &memStore{}
	s := New(Config{}, st)
	rng := rand.New(rand.NewPCG(1, 2))
	var all []float64
	for i, e := range []string{"edge-a", "edge-b"} {
		for k := range 3 { // buckets at t0, t0+10s, t0+20s
			var vals []float64
			for range 500 + 300*i {
				v := math.Exp(rng.NormFloat64() + float64(i)) // edges with different latency
				vals = append(vals, v)
			}
			all = append(all, vals...)
			b := &edge.TelemetryBatch{Edge: e, Metrics: []edge.MetricBucket{{ProjectID: "p", DeploymentID: "d",
				Start: t0.Add(time.Duration(k) * 10 * time.Second), WidthSeconds: 10, Requests: int64(len(vals)),
				Status: map[string]int{"200": len(vals) - 5, "502": 5}, Latency: sketchOf(t, vals),
				Cold: 1, ColdSketch: sketchOf(t, []float64{3}), Warm: int64(len(vals) - 1), Static: 10, StaticHits: 9}}}
			if err := s.Ingest(t.Context(), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	series, err := s.Metrics(t.Context(), MetricsQuery{ProjectID: "p", Since: t0, Until: t0.Add(time.Minute), Step: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(series.Points) != 3 || series.Points[0].Requests != 2*(500+800) || series.Points[1].Requests != 500+800 || series.Points[2].Requests != 0 {
		t.Errorf("points: %+v", series.Points)
	}
	tot := series.Total
	if tot.Requests != int64(len(all)) || tot.Status["502"] != 30 || tot.Errors != 30 || tot.ColdStarts != 6 ||
		tot.Static != 60 || tot.StaticHits != 54 || *tot.CacheHitRate != 0.9 || len(tot.Edges) != 2 {
		t.Errorf("total %+v", tot)
	}
	if math.Abs(series.Points[0].Rate-float64(1300*2)/20) > 1e-9 {
		t.Errorf("rate %v", series.Points[0].Rate)
	}
	sort.Float64s(all)
	for _, c := range []struct{ q, got float64 }{{0.5, tot.LatencyMs.P50}, {0.95, tot.LatencyMs.P95}, {0.99, tot.LatencyMs.P99}} {
		exact := all[int(c.q*float64(len(all)-1))]
		if math.Abs(c.got-exact) > 0.01*exact {
			t.Errorf("p%v = %v, exact %v: beyond 1 %%", c.q*100, c.got, exact)
		}
	}
	if tot.ColdMs == nil || math.Abs(tot.ColdMs.P50-3) > 0.03 {
		t.Errorf("cold %+v", tot.ColdMs)
	}
	one, _ := s.Metrics(t.Context(), MetricsQuery{ProjectID: "p", DeploymentID: "other", Since: t0, Until: t0.Add(time.Minute)})
	if one.Total.Requests != 0 {
		t.Errorf("another deployment's series has %d requests", one.Total.Requests)
	}
}

func TestMetricsRefusesBadQueries(t *testing.T) {
	s := New(Config{}, &memStore{})
	for _, q := range []MetricsQuery{
		{ProjectID: "p", Since: t0, Until: t0},
		{ProjectID: "p", Since: t0, Until: t0.Add(time.Hour), Step: 1500 * time.Millisecond},
		{ProjectID: "p", Since: t0, Until: t0.Add(24 * time.Hour), Step: time.Second},
	} {
		var ve *control.ValidationError
		if _, err := s.Metrics(t.Context(), q); !errors.As(err, &ve) {
			t.Errorf("Metrics(%+v) = %v, want a validation error", q, err)
		}
	}
}

func TestPruneKeepsRetention(t *testing.T) {
	st := &memStore{}
	s := New(Config{Retention: time.Hour}, st)
	_ = st.AppendMetrics(t.Context(), []control.MetricRow{{ProjectID: "p", Bucket: t0}, {ProjectID: "p", Bucket: t0.Add(2 * time.Hour)}})
	n, err := s.Prune(t.Context(), t0.Add(150*time.Minute))
	if err != nil || n != 1 || len(st.metrics) != 1 {
		t.Errorf("Prune = %d, %v; left %d rows", n, err, len(st.metrics))
	}
}
