// nomad.go: one Nomad agent (`nomad agent -dev`, server and client in one
// process) per test binary, on random 127.0.0.1 ports, with the raw_exec
// driver enabled, shared by every test and stopped by StopAll (see
// testenv.Main) or, failing that, by its watchdog when the test binary
// exits. The agent runs with nomad/dev.hcl (the repository's dev agent
// settings) plus a generated file with its ports, data dir and name.
//
// Environment:
//
//	PIER_NOMAD_ADDR=http://...   use this running agent instead of starting one
//	PIER_NOMAD_BIN=/path/nomad   the nomad binary (default: built by Tool)
//	PIER_REQUIRE_SERVERS=1       fail instead of skip when there is no agent

package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// NomadAgent is a running Nomad agent.
type NomadAgent struct {
	Addr   string  // http://127.0.0.1:PORT
	Server *Server // nil for PIER_NOMAD_ADDR
}

var nomadAgent struct {
	once  sync.Once
	agent NomadAgent
	err   error
}

// Nomad returns the test binary's Nomad agent, starting it on first use
// (a few seconds), with a ready client node whose raw_exec driver is
// healthy. It skips t when no nomad binary can be had (or fails it, see
// Unavailable).
func Nomad(t testing.TB) NomadAgent {
	t.Helper()
	if addr := os.Getenv("PIER_NOMAD_ADDR"); addr != "" {
		return NomadAgent{Addr: strings.TrimRight(addr, "/")}
	}
	bin := Tool(t, "nomad")
	devHCL := filepath.Join(RepoRoot(t), "nomad", "dev.hcl")
	nomadAgent.once.Do(func() {
		nomadAgent.agent, nomadAgent.err = startNomad(bin, devHCL)
	})
	if nomadAgent.err != nil {
		t.Fatalf("testenv: %v", nomadAgent.err)
	}
	return nomadAgent.agent
}

// nomadTestHCL is the overlay on nomad/dev.hcl: %d are the http, rpc and
// serf ports.
const nomadTestHCL = `name = "pier-test"
disable_update_check = true
log_level = "INFO"
ports {
  http = %d
  rpc  = %d
  serf = %d
}
`

func startNomad(bin, devHCL string) (NomadAgent, error) {
	var lastErr error
	// A free port can be taken between the probe and the bind: retry.
	for range 3 {
		ports, err := FreePorts(3)
		if err != nil {
			return NomadAgent{}, err
		}
		hcl := fmt.Sprintf(nomadTestHCL, ports[0], ports[1], ports[2])
		// The data dir must be absolute and inside the server's scratch
		// dir, which exists only once the process starts: a shell writes
		// the overlay there and execs the agent (same process group).
		script := `printf '%s' "$1" > test.hcl && exec "$2" agent -dev -config "$3" -config "$PWD/test.hcl" -data-dir "$PWD/data"`
		srv, err := StartServer("nomad", []string{"sh", "-c", script, "sh", hcl, bin, devHCL},
			[]string{
				"AWS_CA_BUNDLE=", // breaks the agent's start-up (IMDS client) on this machine
				"NOMAD_ADDR=", "NOMAD_TOKEN=", "NOMAD_NAMESPACE=", "NOMAD_REGION=",
			})
		if err != nil {
			return NomadAgent{}, err
		}
		addr := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		if err := waitNomad(srv, addr); err != nil {
			srv.Stop()
			lastErr = err
			continue
		}
		return NomadAgent{Addr: addr, Server: srv}, nil
	}
	return NomadAgent{}, fmt.Errorf("start nomad: %w", lastErr)
}

// waitNomad waits for a leader and an active root key (Variables are
// refused with "keyring has not been initialized yet" until then), then
// for a ready node with a healthy raw_exec driver.
func waitNomad(srv *Server, addr string) error {
	err := srv.WaitHTTP(addr+"/v1/status/leader", 60*time.Second, func(r *http.Response) bool {
		var leader string
		return r.StatusCode == http.StatusOK && json.NewDecoder(r.Body).Decode(&leader) == nil && leader != ""
	})
	if err != nil {
		return err
	}
	err = srv.WaitHTTP(addr+"/v1/operator/keyring/keys", 60*time.Second, func(r *http.Response) bool {
		var keys []struct{ State string }
		if r.StatusCode != http.StatusOK || json.NewDecoder(r.Body).Decode(&keys) != nil {
			return false
		}
		for _, k := range keys {
			if k.State == "active" {
				return true
			}
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("nomad keyring: %w", err)
	}
	return srv.WaitHTTP(addr+"/v1/nodes", 60*time.Second, func(r *http.Response) bool {
		if r.StatusCode != http.StatusOK {
			return false
		}
		var nodes []struct {
			Status  string
			Drivers map[string]struct{ Detected, Healthy bool }
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil || json.Unmarshal(raw, &nodes) != nil {
			return false
		}
		for _, n := range nodes {
			if d := n.Drivers["raw_exec"]; n.Status == "ready" && d.Detected && d.Healthy {
				return true
			}
		}
		return false
	})
}
