package e2e

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/pierhq/pier/tests/testenv"
)

// TestDevSysmonSetting: `pier dev` re-executes itself once with the Go
// runtime setting that keeps sysmon from parking (control/cmd/pier
// sysmon.go) and serves as usual, under the same PID.
func TestDevSysmonSetting(t *testing.T) {
	dev := testenv.StartDev(t, t.TempDir())
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", dev.PID))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	env := bytes.Split(raw, []byte{0})
	has := func(kv string) bool {
		for _, e := range env {
			if string(e) == kv {
				return true
			}
		}
		return false
	}
	// /proc/<pid>/environ is the environment the process was executed
	// with: the re-execution's.
	for _, kv := range []string{"GODEBUG=schedtrace=2147483647", "PIER_SYSMON_REEXECED=1"} {
		if !has(kv) {
			t.Errorf("pier dev was not re-executed with %s", kv)
		}
	}
	if code := dev.API(t, "GET", "/v1/projects", nil, nil); code != 200 {
		t.Errorf("GET /v1/projects after the re-execution: %d", code)
	}
}
