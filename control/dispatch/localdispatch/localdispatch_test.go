package localdispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/jobs"
)

// TestMain lets this test binary act as the build worker: the dispatcher
// under test re-executes it with PIER_FAKE_WORKER set. The worker is a
// real child process; only what it does is scripted.
func TestMain(m *testing.M) {
	if mode := os.Getenv("PIER_FAKE_WORKER"); mode != "" {
		os.Exit(fakeWorker(mode, os.Args))
	}
	os.Exit(m.Run())
}

func fakeWorker(mode string, args []string) int {
	var reqPath, resPath string
	for i, a := range args {
		switch a {
		case "--request":
			reqPath = args[i+1]
		case "--result":
			resPath = args[i+1]
		}
	}
	raw, err := os.ReadFile(reqPath)
	if err != nil {
		fmt.Println("no request:", err)
		return 3
	}
	var req jobs.BuildRequest
	json.Unmarshal(raw, &req)
	switch mode {
	case "ok":
		fmt.Println("building", req.DeploymentID)
		out, _ := json.Marshal(jobs.BuildResult{DeploymentID: req.DeploymentID, CommitSHA: "abc", Files: 3})
		os.WriteFile(resPath, out, 0o600)
		return 0
	case "crash":
		fmt.Println("about to crash")
		return 2
	case "hang":
		time.Sleep(time.Hour)
	}
	return 1
}

func dispatcher(t *testing.T, mode string) *Dispatcher {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIER_FAKE_WORKER", mode)
	return New(Config{Command: []string{exe}, TempDir: t.TempDir(), Grace: 100 * time.Millisecond})
}

func TestDispatch(t *testing.T) {
	var log bytes.Buffer
	res, err := dispatcher(t, "ok").Dispatch(context.Background(), jobs.BuildRequest{DeploymentID: "dpl-1", Timeout: time.Minute}, &log)
	if err != nil {
		t.Fatal(err)
	}
	if res.CommitSHA != "abc" || res.Files != 3 || !res.OK() {
		t.Errorf("result = %+v", res)
	}
	if !strings.Contains(log.String(), "building dpl-1") {
		t.Errorf("log = %q, want the worker's output", log.String())
	}
}

func TestDispatchCrashIsAnInfrastructureError(t *testing.T) {
	var log bytes.Buffer
	_, err := dispatcher(t, "crash").Dispatch(context.Background(), jobs.BuildRequest{DeploymentID: "dpl-2", Timeout: time.Minute}, &log)
	if err == nil || !strings.Contains(err.Error(), "without a result") {
		t.Fatalf("err = %v, want a missing-result error", err)
	}
}

func TestDispatchHungWorkerTimesOut(t *testing.T) {
	var log bytes.Buffer
	res, err := dispatcher(t, "hang").Dispatch(context.Background(), jobs.BuildRequest{DeploymentID: "dpl-3", Timeout: 200 * time.Millisecond}, &log)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || !strings.Contains(res.Error, "timed out") {
		t.Errorf("result = %+v, want a timeout failure", res)
	}
}

func TestDispatchCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	var log bytes.Buffer
	_, err := dispatcher(t, "hang").Dispatch(ctx, jobs.BuildRequest{DeploymentID: "dpl-4", Timeout: time.Hour}, &log)
	if err == nil {
		t.Fatal("canceled dispatch returned no error")
	}
}
