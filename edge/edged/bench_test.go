package edged_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/edge/cache/cachetest"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/raftkv"
	"github.com/pierhq/pier/edge/edged"
)

// BenchmarkCutover measures the two figures of DESIGN.md's targets on the
// embedded backends (single-node raft, a local object store), with three
// edges: from "build done" (the manifest of a deployment of 1,000 files,
// 10 of them changed, is in the object store) to the new deployment
// served by every edge (target: under 1 s), and from a rollback request
// to the old deployment served by every edge (target: under 100 ms).
// "Served" is observed from outside: an HTTP GET on each edge returning the
// new content, not the coordinator's own claim.
//
//	go test -run '^$' -bench Cutover -benchtime 10x ./edge/edged
func BenchmarkCutover(b *testing.B) {
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
	quiet := slog.New(slog.DiscardHandler)

	var edges []*edged.Server
	for i := range 3 {
		s, err := edged.New(edged.Config{ID: fmt.Sprintf("edge-%d", i+1), Addr: "127.0.0.1:0", BaseDomain: "localhost",
			CacheDir: b.TempDir(), Logger: quiet}, edged.Deps{Coord: c, Blobs: blobs})
		if err != nil {
			b.Fatal(err)
		}
		ectx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { s.Run(ectx); close(done) }()
		defer func() { cancel(); <-done }()
		<-s.Ready()
		edges = append(edges, s)
	}

	const files, changed = 1000, 10
	base := cachetest.Deployment{ID: "dpl-base", ProjectID: "prj-bench", ProjectName: "bench", Files: map[string]cachetest.File{}}
	for i := range files {
		base.Files[fmt.Sprintf("assets/file-%04d.css", i)] = cachetest.File{Body: fmt.Sprintf("/* %d */ %s", i, strings.Repeat("x", 2000))}
	}
	base.Files["index.html"] = cachetest.File{Body: "version base"}
	mBase := cachetest.Publish(b, blobs, base)
	if _, err := c.Promote(ctx, coord.PromoteRequest{ProjectID: "prj-bench", ProjectName: "bench", Environment: "production", DeploymentID: mBase.DeploymentID}); err != nil {
		b.Fatal(err)
	}
	for _, e := range edges {
		waitServing(b, e, "version base")
	}

	var deploys, rollbacks []time.Duration
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		next := cachetest.Deployment{ID: fmt.Sprintf("dpl-next-%d", n), ProjectID: "prj-bench", ProjectName: "bench", Files: map[string]cachetest.File{}}
		for k, v := range base.Files {
			next.Files[k] = v
		}
		for i := range changed - 1 {
			next.Files[fmt.Sprintf("assets/file-%04d.css", i*97)] = cachetest.File{Body: fmt.Sprintf("changed %d %d", n, i)}
		}
		body := fmt.Sprintf("version %d", n)
		next.Files["index.html"] = cachetest.File{Body: body}
		m := cachetest.Publish(b, blobs, next) // the build is done
		b.StartTimer()

		start := time.Now()
		if err := c.Announce(ctx, coord.Announcement{DeploymentID: m.DeploymentID, ProjectID: "prj-bench", ProjectName: "bench"}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Promote(ctx, coord.PromoteRequest{ProjectID: "prj-bench", ProjectName: "bench", Environment: "production", DeploymentID: m.DeploymentID}); err != nil {
			b.Fatal(err)
		}
		for _, e := range edges {
			waitServing(b, e, body)
		}
		deploys = append(deploys, time.Since(start))

		start = time.Now()
		if _, err := c.Promote(ctx, coord.PromoteRequest{ProjectID: "prj-bench", ProjectName: "bench", Environment: "production", DeploymentID: mBase.DeploymentID}); err != nil {
			b.Fatal(err)
		}
		for _, e := range edges {
			waitServing(b, e, "version base")
		}
		rollbacks = append(rollbacks, time.Since(start))
	}
	b.StopTimer()
	report(b, "deploy", deploys, time.Second)
	report(b, "rollback", rollbacks, 100*time.Millisecond)
}

// waitServing polls e until / answers body. Bounded: a benchmark must end.
func waitServing(b *testing.B, e *edged.Server, body string) {
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.Addr()+"/", nil)
		req.Host = "bench.localhost"
		if res, err := http.DefaultTransport.RoundTrip(req); err == nil {
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(got) == body {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("edge %s never served %q", e.Addr(), body)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func report(b *testing.B, name string, ds []time.Duration, target time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	p50, max := ds[len(ds)/2], ds[len(ds)-1]
	b.ReportMetric(float64(p50.Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(max.Microseconds())/1000, name+"-max-ms")
	b.Logf("%s to live on all 3 edges: p50 %v, max %v over %d runs (target under %v)", name, p50.Round(10*time.Microsecond), max.Round(10*time.Microsecond), len(ds), target)
}
