package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/edge/blob/s3blob"
	"github.com/pierhq/pier/edge/cache/cachetest"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/consulkv"
	"github.com/pierhq/pier/edge/coord/raftkv"
	"github.com/pierhq/pier/edge/edged"
	"github.com/pierhq/pier/tests/testenv"
)

// BenchmarkCutoverConsul is DESIGN.md's propagation target measured the
// production way: three edges as separate `pier serve --roles edge`
// processes on Consul and MinIO. Each iteration publishes a deployment of
// 1,000 files of which 10 changed (the build is done), then times until
// every edge serves it (target under 1 s), then rolls back and times until
// every edge serves the old one again (target under 100 ms). "Serves" is
// observed with HTTP requests to each edge.
//
//	go test -run '^$' -bench CutoverConsul -benchtime 10x ./tests/e2e
func BenchmarkCutoverConsul(b *testing.B) {
	ctx := context.Background()
	consul := testenv.Consul(b)
	s3 := testenv.MinIO(b)
	bucket := s3.NewBucket(b)
	prefix := "bench-" + bucket
	dir := b.TempDir()
	cfg := filepath.Join(dir, "pier.hcl")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
control { base_domain = "pier.test" }
s3 {
  endpoint   = %q
  bucket     = %q
  region     = %q
  access_key = %q
}
consul {
  address = "http://%s"
  prefix  = %q
}
`, s3.URL, bucket, s3.Region, s3.AccessKey, consul.Addr, prefix)), 0o600)

	blobs, err := s3blob.New(ctx, s3blob.Config{Endpoint: s3.URL, Bucket: bucket, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	kv, err := consulkv.New(consulkv.Config{Address: consul.Addr, KeyPrefix: prefix + "/"})
	if err != nil {
		b.Fatal(err)
	}
	c := coord.New(coord.Config{ReadyTimeout: time.Minute}, kv)

	ports, err := testenv.FreePorts(3)
	if err != nil {
		b.Fatal(err)
	}
	var addrs []string
	for i, port := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		id := fmt.Sprintf("bench-edge-%d", i+1)
		testenv.StartPier(b, id, "http://"+addr+"/healthz",
			[]string{"PIER_S3_SECRET_KEY=" + s3.SecretKey, "PIER_EDGE_ID=" + id, "PIER_EDGE_LISTEN=" + addr,
				"PIER_DATA_DIR=" + filepath.Join(dir, id), "PIER_LOG_LEVEL=warn"},
			"serve", "--config", cfg, "--roles", "edge")
		addrs = append(addrs, addr)
	}
	testenv.WaitFor(b, time.Minute, "3 edges in the pool", func() bool {
		es, err := c.Edges(ctx)
		return err == nil && len(es) == 3
	})

	runCutover(b, c, blobs, addrs, "3 edge processes on Consul + MinIO")
}

// BenchmarkCutoverRaft is the same measurement on the embedded backends:
// single-node raft, a local-disk object store, three edges in this process.
//
//	go test -run '^$' -bench CutoverRaft -benchtime 10x ./tests/e2e
func BenchmarkCutoverRaft(b *testing.B) {
	ctx := context.Background()
	kv, err := raftkv.Open(raftkv.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer kv.Close()
	blobs, err := dirblob.New(filepath.Join(b.TempDir(), "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	c := coord.New(coord.Config{ReadyTimeout: time.Minute}, kv)
	var addrs []string
	for i := range 3 {
		s, err := edged.New(edged.Config{ID: fmt.Sprintf("edge-%d", i+1), Addr: "127.0.0.1:0", BaseDomain: "pier.test",
			CacheDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)}, edged.Deps{Coord: c, Blobs: blobs})
		if err != nil {
			b.Fatal(err)
		}
		ectx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { s.Run(ectx); close(done) }()
		defer func() { cancel(); <-done }()
		<-s.Ready()
		addrs = append(addrs, s.Addr())
	}
	runCutover(b, c, blobs, addrs, "3 in-process edges on raft + local disk")
}

// runCutover is the measurement both setups share: each iteration publishes
// a deployment of 1,000 files of which 10 changed (the build is done), then
// times until every edge at addrs serves it, then rolls back and times until
// every edge serves the old one again.
func runCutover(b *testing.B, c *coord.Coordinator, blobs cachetest.Putter, addrs []string, setup string) {
	ctx := context.Background()
	const files, changed = 1000, 10
	base := cachetest.Deployment{ID: "dpl-bench-base", ProjectID: "prj-bench", ProjectName: "bench", Files: map[string]cachetest.File{}}
	for i := range files {
		base.Files[fmt.Sprintf("assets/file-%04d.css", i)] = cachetest.File{Body: fmt.Sprintf("/* %d */ %s", i, strings.Repeat("x", 2000))}
	}
	base.Files["index.html"] = cachetest.File{Body: "version base"}
	mBase := cachetest.Publish(b, blobs, base)
	promote := func(id string) *coord.Cutover {
		cut, err := c.Promote(ctx, coord.PromoteRequest{ProjectID: "prj-bench", ProjectName: "bench", Environment: "production", DeploymentID: id})
		if err != nil {
			b.Fatal(err)
		}
		return cut
	}
	promote(mBase.DeploymentID)
	for _, a := range addrs {
		serving(b, a, "version base")
	}

	var deploys, rollbacks, confirms []time.Duration
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		next := cachetest.Deployment{ID: fmt.Sprintf("dpl-bench-%d", n), ProjectID: "prj-bench", ProjectName: "bench", Files: map[string]cachetest.File{}}
		for k, v := range base.Files {
			next.Files[k] = v
		}
		for i := range changed - 1 {
			next.Files[fmt.Sprintf("assets/file-%04d.css", i*97)] = cachetest.File{Body: fmt.Sprintf("changed %d %d", n, i)}
		}
		body := fmt.Sprintf("version %d", n)
		next.Files["index.html"] = cachetest.File{Body: body}
		m := cachetest.Publish(b, blobs, next)
		b.StartTimer()

		start := time.Now()
		if err := c.Announce(ctx, coord.Announcement{DeploymentID: m.DeploymentID, ProjectID: "prj-bench", ProjectName: "bench"}); err != nil {
			b.Fatal(err)
		}
		cut := promote(m.DeploymentID)
		for _, a := range addrs {
			serving(b, a, body)
		}
		deploys = append(deploys, time.Since(start))
		confirms = append(confirms, cut.ReadyWait)

		start = time.Now()
		promote(mBase.DeploymentID)
		for _, a := range addrs {
			serving(b, a, "version base")
		}
		rollbacks = append(rollbacks, time.Since(start))
	}
	b.StopTimer()
	benchReport(b, setup, "deploy", deploys, time.Second)
	benchReport(b, setup, "confirm", confirms, 0)
	benchReport(b, setup, "rollback", rollbacks, 100*time.Millisecond)
}

// serving polls addr until / for bench.pier.test answers body (bounded).
func serving(b *testing.B, addr, body string) {
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Host = "bench.pier.test"
		if res, err := http.DefaultTransport.RoundTrip(req); err == nil {
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(got) == body {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never served %q", addr, body)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func benchReport(b *testing.B, setup, name string, ds []time.Duration, target time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	p50, max := ds[len(ds)/2], ds[len(ds)-1]
	b.ReportMetric(float64(p50.Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(max.Microseconds())/1000, name+"-max-ms")
	t := ""
	if target > 0 {
		t = fmt.Sprintf(" (target under %v)", target)
	}
	b.Logf("%s, %s: p50 %v, max %v over %d runs%s", name, setup, p50.Round(10*time.Microsecond), max.Round(10*time.Microsecond), len(ds), t)
}
