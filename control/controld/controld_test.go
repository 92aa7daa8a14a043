package controld_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/pierhq/pier/control/controld"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/secrets/localkeyring"
	"github.com/pierhq/pier/control/store/sqlitestore"
	"github.com/pierhq/pier/jobs"
)

type nopDispatcher struct{}

func (nopDispatcher) Dispatch(context.Context, jobs.BuildRequest, io.Writer) (*jobs.BuildResult, error) {
	return &jobs.BuildResult{}, nil
}

type nopRouter struct{}

func (nopRouter) Announce(context.Context, string, string, string) error { return nil }
func (nopRouter) Retract(context.Context, string) error                  { return nil }
func (nopRouter) Promote(context.Context, string, string, string, string) (*deploy.Cutover, error) {
	return &deploy.Cutover{}, nil
}
func (nopRouter) Active(context.Context, string, string) (string, error) { return "", nil }
func (nopRouter) Forget(context.Context, string) error                   { return nil }

// TestRunServesAndStops: Run serves the handler on the listener, and
// returns promptly once its context ends.
func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	keys, _ := localkeyring.Open(filepath.Join(dir, "keyring"))
	svc := deploy.New(deploy.DefaultConfig(), deploy.Deps{Store: store, Dispatcher: nopDispatcher{}, Router: nopRouter{}, Sealer: keys})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pier") })
	srv := controld.New(controld.Config{ShutdownTimeout: 2 * time.Second}, controld.Deps{API: h, Deploy: svc})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "pier" {
		t.Errorf("body = %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		t.Error("still serving after Run returned")
	}
}
