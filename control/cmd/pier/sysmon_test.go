package main

import (
	"os"
	"testing"
)

// TestTuneSysmon covers the cases where tuneSysmon returns (the
// re-execution itself replaces the process: tests/e2e TestDevSysmonSetting
// checks it on the real binary).
func TestTuneSysmon(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		env         map[string]string // "" value: unset
		wantGODEBUG string            // "" : unset
	}{
		{"not a server command", []string{"build"}, map[string]string{"GODEBUG": ""}, ""},
		{"no command", nil, map[string]string{"GODEBUG": "x=1"}, "x=1"},
		{"opted out", []string{"dev"}, map[string]string{sysmonEnv: "default", "GODEBUG": ""}, ""},
		{"schedtrace already set", []string{"serve"}, map[string]string{"GODEBUG": "schedtrace=1000"}, "schedtrace=1000"},
		{"re-executed: the original GODEBUG back",
			[]string{"dev"}, map[string]string{sysmonMarker: "1", sysmonOrigEnv: "madvdontneed=1", "GODEBUG": "madvdontneed=1," + sysmonSetting},
			"madvdontneed=1"},
		{"re-executed: no GODEBUG before",
			[]string{"serve"}, map[string]string{sysmonMarker: "1", sysmonOrigEnv: "", "GODEBUG": sysmonSetting}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{sysmonEnv, sysmonMarker, sysmonOrigEnv} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
				if v == "" {
					os.Unsetenv(k)
				}
			}
			tuneSysmon(tt.args)
			got, ok := os.LookupEnv("GODEBUG")
			if tt.wantGODEBUG == "" && ok {
				t.Errorf("GODEBUG = %q, want it unset", got)
			}
			if tt.wantGODEBUG != "" && got != tt.wantGODEBUG {
				t.Errorf("GODEBUG = %q, want %q", got, tt.wantGODEBUG)
			}
			for _, k := range []string{sysmonMarker, sysmonOrigEnv} {
				if tt.env[sysmonMarker] != "" {
					if v, ok := os.LookupEnv(k); ok {
						t.Errorf("%s = %q left for the children", k, v)
					}
				}
			}
		})
	}
}
