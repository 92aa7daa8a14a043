// Package specs holds Pier's Nomad job specifications and renders them
// from Go:
//
//   - build.nomad.hcl (Render): the build worker as a parameterized batch
//     job that control dispatches once per build;
//   - control.nomad.hcl (RenderControl): the control plane as a service
//     job, several instances behind a health-checked service;
//   - edge.nomad.hcl (RenderEdge): the edge as a system job, one instance
//     on every client node of the edge node pool, in every datacenter;
//   - cron.nomad.hcl (RenderCron): a scheduled function as a periodic batch
//     job, so a schedule fires once across the fleet.
//
// docs/operations.md says how operators use them.
//
// The specs are text/template files embedded in the binary. Every value
// from the Go side is written as a quoted HCL string literal, so a value can
// never change the structure of a spec, and "${" in a value is escaped from
// HCL evaluation (Nomad still interpolates runtime variables such as
// ${NOMAD_TASK_DIR} in task arguments when the task starts).
//
// It imports only the standard library. Only main (control/cmd/pier) and
// tests import it: control reaches the rendered bytes through its config.
package specs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

//go:embed build.nomad.hcl
var buildSpec string

var buildTmpl = parse("build.nomad.hcl", buildSpec)

// The drivers a build can run on.
const (
	DriverDocker  = "docker"   // production: the pier image, isolated
	DriverExec    = "exec"     // Linux namespaces and cgroups, no Docker needed
	DriverRawExec = "raw_exec" // no isolation: dev agents and tests only
)

// BuildVars are the settings of the build job. Zero values take the
// defaults of DefaultBuildVars.
type BuildVars struct {
	// Driver is DriverDocker (default), DriverExec or DriverRawExec.
	Driver string
	// Image is the container image holding pier (docker only; required).
	Image string
	// PierPath is the pier binary: inside the image for docker, on the
	// client node for exec and raw_exec. Default /usr/local/bin/pier.
	PierPath string
	// Args follow `pier build --request ${NOMAD_TASK_DIR}/request.json
	// --result -`: the object store flags and the like. They may use
	// Nomad runtime variables, e.g. "--work-dir=${NOMAD_TASK_DIR}/work".
	Args []string
	// CPU is the task's CPU share in MHz; default 1000.
	CPU int
	// MemoryMB is the task's memory limit; default 2048.
	MemoryMB int
	// DiskMB is the group's ephemeral disk (checkout, node_modules,
	// output, and LogsMB of logs); default 2048.
	DiskMB int
	// Datacenters the job may run in; default ["*"] (all).
	Datacenters []string
	// NodePool keeps builds off the edge machines; default "default" (a
	// production cluster uses a dedicated "builds" pool).
	NodePool string
	// Namespace is the Nomad namespace of the job; default "default".
	Namespace string
	// Network is the Docker network a docker build runs on; default
	// "pier-builds": a bridge from which the build nodes drop traffic to
	// private, link-local and metadata addresses (nomad/builder-firewall.sh),
	// so a build reaches registries and git hosts on the internet and
	// nothing inside the cluster.
	Network string
	// User runs an exec or raw_exec build as this user; "" keeps the
	// driver's default. Build nodes for the exec driver use "pier-build",
	// whose traffic to internal addresses the same script drops.
	User string
	// Env is the task's environment: what the worker must not take in
	// argv, such as PIER_S3_SECRET_KEY. Anyone who may read the job can
	// read it; where that matters, leave it out and give the nodes
	// credentials of their own (an instance role, or a Vault/Nomad
	// Variables template added to the spec).
	Env map[string]string
}

// LogsMB is the disk the build job's logs may take (5 files of 10 MB);
// Nomad counts it in the ephemeral disk, so DiskMB must exceed it.
const LogsMB = 50

// DefaultBuildVars returns the defaults Render applies to zero fields.
func DefaultBuildVars() BuildVars {
	return BuildVars{
		Driver:      DriverDocker,
		PierPath:    "/usr/local/bin/pier",
		CPU:         1000,
		MemoryMB:    2048,
		DiskMB:      2048,
		Datacenters: []string{"*"},
		NodePool:    "default",
		Namespace:   "default",
	}
}

// Render returns build.nomad.hcl for v: the parameterized batch job
// "pier-build". It fails when v is invalid.
func Render(v BuildVars) ([]byte, error) {
	def := DefaultBuildVars()
	if v.Driver == "" {
		v.Driver = def.Driver
	}
	if v.PierPath == "" {
		v.PierPath = def.PierPath
	}
	if v.CPU == 0 {
		v.CPU = def.CPU
	}
	if v.MemoryMB == 0 {
		v.MemoryMB = def.MemoryMB
	}
	if v.DiskMB == 0 {
		v.DiskMB = def.DiskMB
	}
	if len(v.Datacenters) == 0 {
		v.Datacenters = def.Datacenters
	}
	if v.NodePool == "" {
		v.NodePool = def.NodePool
	}
	if v.Namespace == "" {
		v.Namespace = def.Namespace
	}
	if v.Network == "" && v.Driver == DriverDocker {
		v.Network = "pier-builds"
	}
	if err := v.validate(); err != nil {
		return nil, fmt.Errorf("render build job: %w", err)
	}
	var buf bytes.Buffer
	if err := buildTmpl.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("render build job: %w", err)
	}
	return hclwrite.Format(buf.Bytes()), nil
}

var userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (v BuildVars) validate() error {
	var errs []error
	for k := range v.Env {
		if !envName.MatchString(k) {
			errs = append(errs, fmt.Errorf("env: %q is not a variable name", k))
		}
	}
	switch v.Driver {
	case DriverDocker:
		if v.Image == "" {
			errs = append(errs, errors.New("the docker driver needs an image"))
		}
		if v.User != "" {
			errs = append(errs, errors.New("a user is set by the image for the docker driver"))
		}
	case DriverExec, DriverRawExec:
		if v.Image != "" || v.Network != "" {
			errs = append(errs, fmt.Errorf("an image and a network are only used by the docker driver, not %s", v.Driver))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown driver %q (want %s, %s or %s)", v.Driver, DriverDocker, DriverExec, DriverRawExec))
	}
	if v.User != "" && !userName.MatchString(v.User) {
		errs = append(errs, fmt.Errorf("user %q is not a user name", v.User))
	}
	if !path.IsAbs(v.PierPath) {
		errs = append(errs, fmt.Errorf("pier path %q is not absolute", v.PierPath))
	}
	if v.CPU < 0 || v.MemoryMB < 0 || v.DiskMB < 0 {
		errs = append(errs, errors.New("cpu, memory and disk must be positive"))
	} else if v.DiskMB <= LogsMB {
		errs = append(errs, fmt.Errorf("disk (%d MB) must exceed the %d MB kept for logs", v.DiskMB, LogsMB))
	}
	for _, dc := range v.Datacenters {
		if dc == "" {
			errs = append(errs, errors.New("empty datacenter name"))
		}
	}
	return errors.Join(errs...)
}

// quote writes s as an HCL2 quoted string literal. Besides the usual
// escapes, "${" and "%{" are doubled so HCL reads them literally instead
// of as template sequences.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case (r == '$' || r == '%') && strings.HasPrefix(s[i+1:], "{"):
			b.WriteRune(r)
			b.WriteRune(r)
		case r > 0xFFFF && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\U%08X`, r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
