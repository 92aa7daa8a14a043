package telemetry

import (
	"context"
	"errors"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierhq/pier/edge"
)

// sink records batches; fail makes Ship fail, block makes it wait.
type sink struct {
	mu      sync.Mutex
	batches []*edge.TelemetryBatch
	fail    bool
	block   chan struct{}
}

func (s *sink) Ship(ctx context.Context, b *edge.TelemetryBatch) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("control is down")
	}
	s.batches = append(s.batches, b)
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A flood of console calls while shipping is stuck never blocks the
// caller: the buffer keeps BufferSize records, the rest are counted.
func TestFloodNeverBlocks(t *testing.T) {
	reg := prometheus.NewRegistry()
	sk := &sink{block: make(chan struct{})}
	c, err := New(Config{Edge: "e1", BufferSize: 10, FlushInterval: time.Millisecond}, sk, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	time.Sleep(5 * time.Millisecond) // let a flush take some records and block on the sink
	start := time.Now()
	for i := range 10000 {
		c.Console(Console{Time: time.Now(), ProjectID: "p", DeploymentID: "d", Level: "log", Message: "line"})
		c.Request(Access{Time: time.Now(), ProjectID: "p", DeploymentID: "d", Status: 200 + i%2, Duration: time.Millisecond})
	}
	t.Logf("20,000 records with shipping stuck: %s", time.Since(start))
	st := c.Stats()
	if st.Buffered != 10 {
		t.Errorf("buffered %d, want the buffer's 10", st.Buffered)
	}
	if got := counter(t, reg, "pier_edge_telemetry_logs_dropped_total"); got < 19000 {
		t.Errorf("dropped %v, want nearly all of 20000", got)
	}
	if got := counter(t, reg, "pier_edge_requests_total"); got != 10000 {
		t.Errorf("pier_edge_requests_total = %v, want 10000 (metrics are never dropped)", got)
	}
	close(sk.block)
	cancel()
	<-done
	var requests, dropped, logs int64
	for _, b := range sk.batches {
		for _, m := range b.Metrics {
			requests += m.Requests
		}
		dropped += b.Dropped
		logs += int64(len(b.Logs))
	}
	if requests != 10000 || dropped+logs != 20000 {
		t.Errorf("shipped %d requests, %d records and %d drops; want every request, and every record shipped or counted", requests, logs, dropped)
	}
}

// Closed buckets ship with exact counts and sketches within the relative
// accuracy; open ones wait (except on the final flush); a failed shipment
// keeps its metrics for the next and counts its logs as dropped.
func TestFlushBuckets(t *testing.T) {
	sk := &sink{}
	c, err := New(Config{Edge: "e1", Bucket: 10 * time.Second}, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute).Truncate(10 * time.Second)
	var ms []float64
	for i := range 1000 {
		d := time.Duration(math.Exp(float64(i%97)/10)) * time.Microsecond * 50
		ms = append(ms, float64(d.Microseconds())/1000)
		c.Request(Access{Time: old.Add(time.Duration(i) * time.Millisecond), ProjectID: "p", DeploymentID: "d",
			Status: []int{200, 404, 500}[i%3], Duration: d, Code: i%2 == 0, Cold: i == 0, Acquire: time.Millisecond,
			Static: i%2 == 1, CacheHit: i%4 == 1})
	}
	c.Request(Access{Time: time.Now(), ProjectID: "p", DeploymentID: "d", Status: 200, Duration: time.Millisecond})

	sk.fail = true
	c.Flush(t.Context(), false)
	if len(sk.batches) != 0 {
		t.Fatal("a failed shipment was recorded")
	}
	sk.fail = false
	c.Flush(t.Context(), false)
	if len(sk.batches) != 1 || len(sk.batches[0].Metrics) != 1 {
		t.Fatalf("batches %+v, want one with the closed bucket", sk.batches)
	}
	b := sk.batches[0].Metrics[0]
	if b.Requests != 1000 || b.Status["200"] != 334 || b.Status["404"] != 333 || b.Status["500"] != 333 ||
		b.Cold != 1 || b.Warm != 499 || b.Static != 500 || b.StaticHits != 250 || !b.Start.Equal(old) || b.WidthSeconds != 10 {
		t.Errorf("bucket %+v", b)
	}
	if sk.batches[0].Dropped != 1001 { // the records of the failed shipment
		t.Errorf("dropped reported: %d, want 1001", sk.batches[0].Dropped)
	}
	lat, err := ddsketch.DecodeDDSketch(b.Latency, store.DefaultProvider, nil)
	if err != nil {
		t.Fatal(err)
	}
	sort.Float64s(ms)
	for _, q := range []float64{0.5, 0.95, 0.99} {
		got, _ := lat.GetValueAtQuantile(q)
		exact := ms[int(q*float64(len(ms)-1))]
		if math.Abs(got-exact) > 0.01*exact {
			t.Errorf("p%v = %v, exact %v: beyond 1 %%", q*100, got, exact)
		}
	}
	c.Flush(t.Context(), true)
	if len(sk.batches) != 2 || len(sk.batches[1].Metrics) != 1 || sk.batches[1].Metrics[0].Requests != 1 {
		t.Errorf("final flush did not ship the open bucket: %+v", sk.batches)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(Config{}, &sink{}, nil); err == nil {
		t.Error("New without an edge id succeeded")
	}
}
