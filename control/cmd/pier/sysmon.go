package main

import (
	"os"
	"strings"
	"syscall"
)

// The server roles (dev, serve) run with the Go runtime's debug setting
// schedtrace set to its largest value (once every 24.8 days), for one side
// effect: the runtime's sysmon thread no longer parks while every P is
// idle. Parked, it is woken by the next system call, and every call into
// V8 is one (a cgo call of 40–100 µs for a page render): sysmon then polls
// every 20 µs until the process is idle again, so an edge serving one
// request at a time paid two to three thread wake-ups per request for
// sysmon alone, 15 % of its CPU on a VM (perf, docs/runtime.md). With the
// setting sysmon backs off to 10 ms polls as it does under steady load;
// everything else it does (retaking Ps from long cgo calls, preempting
// long-running goroutines, the forced GC) is unchanged. The cost: sysmon
// wakes every 10 ms when the process is idle, and a process started more
// than 24.8 days after boot prints one "SCHED" line on stderr when it
// starts (and every 24.8 days). GODEBUG is read once, at start, so the
// process re-executes itself with the setting (same PID, same arguments);
// the environment its children see is the original one.
//
// PIER_SYSMON=default (or a GODEBUG that sets schedtrace) leaves the
// runtime as it is.
const (
	sysmonSetting = "schedtrace=2147483647"
	sysmonEnv     = "PIER_SYSMON"          // "default": no re-execution
	sysmonOrigEnv = "PIER_SYSMON_GODEBUG"  // the GODEBUG to restore after the re-execution
	sysmonMarker  = "PIER_SYSMON_REEXECED" // set for the re-executed process
)

// tuneSysmon re-executes the process for the server commands with the
// sysmon setting, or, in the re-executed process, restores the original
// GODEBUG for the children. It returns only if the process runs as it is
// (not a server command, opted out, already set, or exec failed).
func tuneSysmon(args []string) {
	if os.Getenv(sysmonMarker) != "" {
		orig, had := os.LookupEnv(sysmonOrigEnv)
		os.Unsetenv(sysmonMarker)
		os.Unsetenv(sysmonOrigEnv)
		if had && orig != "" {
			os.Setenv("GODEBUG", orig)
		} else {
			os.Unsetenv("GODEBUG")
		}
		return
	}
	if len(args) == 0 || (args[0] != "dev" && args[0] != "serve") || os.Getenv(sysmonEnv) == "default" {
		return
	}
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "schedtrace=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	setting := sysmonSetting
	if godebug != "" {
		setting = godebug + "," + sysmonSetting
	}
	env := make([]string, 0, len(os.Environ())+3)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GODEBUG="+setting, sysmonOrigEnv+"="+godebug, sysmonMarker+"=1")
	_ = syscall.Exec(exe, os.Args, env) // returns only on failure: run as we are
}
