package specs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

//go:embed control.nomad.hcl
var controlSpec string

var controlTmpl = parse("control.nomad.hcl", controlSpec)

// Service providers: where a job registers its service.
const (
	ProviderConsul = "consul" // the Consul catalog: load balancers and DNS find it there
	ProviderNomad  = "nomad"  // Nomad's own service registry (no Consul integration needed)
)

// ControlVars are the settings of the control job. Zero values take the
// defaults of DefaultControlVars.
type ControlVars struct {
	JobID       string   // default "pier-control"
	Namespace   string   // default "default" (a production cluster uses "pier")
	Region      string   // "" = the region the job is submitted to
	Datacenters []string // default ["*"]
	// NodePool keeps control on its own machines; default "default"
	// (production: "control").
	NodePool string
	// Count is the number of instances, each on a different client node;
	// default 3. Any instance serves the API; builds are claimed from the
	// database with FOR UPDATE SKIP LOCKED, so instances never double up.
	Count int
	// Port is the API's static port on each node (default 7070), which
	// load balancers target; -1 picks a dynamic port (tests).
	Port int

	Driver   string // DriverDocker (default), DriverExec or DriverRawExec
	Image    string // docker only; required there
	PierPath string // default /usr/local/bin/pier
	CPU      int    // MHz, default 500
	MemoryMB int    // default 512

	// Provider registers the service "pier-control" in Consul (default)
	// or in Nomad's registry, with an HTTP check on /healthz.
	Provider string
	// Config is the pier config file (HCL) the instances run with: the
	// non-secret settings (backends' addresses, base domain...). It is
	// written to local/pier.hcl by a Nomad template, so {{ ... }} in it is
	// template syntax (e.g. {{ env "NOMAD_ALLOC_ID" }}). Empty: none.
	Config string
	// Env adds environment variables (PIER_* settings; values may use
	// Nomad runtime variables such as ${NOMAD_ALLOC_DIR}).
	Env map[string]string
	// Secrets gives the task every item of the Nomad Variable
	// nomad/jobs/<JobID> as an environment variable (PIER_POSTGRES_DSN,
	// PIER_S3_SECRET_KEY, PIER_CONSUL_TOKEN, PIER_NOMAD_TOKEN,
	// PIER_BOOTSTRAP_TOKEN...). The task waits until the variable exists.
	Secrets bool
	// VaultRole, when set, has Nomad log the task in to Vault with its
	// workload identity under this JWT role (vault/nomad-workload-role.json)
	// and hand it the token as VAULT_TOKEN, which pier uses for transit.
	VaultRole string
}

// DefaultControlVars returns the defaults RenderControl applies to zero
// fields.
func DefaultControlVars() ControlVars {
	return ControlVars{
		JobID:       "pier-control",
		Namespace:   "default",
		Datacenters: []string{"*"},
		NodePool:    "default",
		Count:       3,
		Port:        7070,
		Driver:      DriverDocker,
		PierPath:    "/usr/local/bin/pier",
		CPU:         500,
		MemoryMB:    512,
		Provider:    ProviderConsul,
	}
}

type controlData struct {
	process
	Count, Port      int
	Provider, Config string
	Secrets          bool
	VaultRole        string
}

// RenderControl returns control.nomad.hcl for v: the service job that runs
// `pier serve --roles control`. It fails when v is invalid.
func RenderControl(v ControlVars) ([]byte, error) {
	def := DefaultControlVars()
	p := process{JobID: v.JobID, Namespace: v.Namespace, Region: v.Region, Datacenters: v.Datacenters,
		NodePool: v.NodePool, Driver: v.Driver, Image: v.Image, Command: v.PierPath, CPU: v.CPU,
		MemoryMB: v.MemoryMB, Env: v.Env}
	p.defaults(def.JobID, def.PierPath, def.CPU, def.MemoryMB)
	if v.Count == 0 {
		v.Count = def.Count
	}
	if v.Port == 0 {
		v.Port = def.Port
	}
	if v.Provider == "" {
		v.Provider = def.Provider
	}
	errs := p.validate()
	if v.Count < 0 {
		errs = append(errs, errors.New("count must be positive"))
	}
	errs = append(errs, checkPort(v.Port)...)
	errs = append(errs, checkProvider(v.Provider)...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("render control job: %w", err)
	}
	p.Env = withEnv(map[string]string{
		"PIER_CONTROL_LISTEN": "${NOMAD_ADDR_http}",
		"PIER_DATA_DIR":       "${NOMAD_ALLOC_DIR}/data",
	}, p.Env)
	var buf bytes.Buffer
	if err := controlTmpl.Execute(&buf, controlData{process: p, Count: v.Count, Port: v.Port,
		Provider: v.Provider, Config: v.Config, Secrets: v.Secrets, VaultRole: v.VaultRole}); err != nil {
		return nil, fmt.Errorf("render control job: %w", err)
	}
	return hclwrite.Format(buf.Bytes()), nil
}

func checkPort(port int) []error {
	if port != -1 && (port < 1 || port > 65535) {
		return []error{fmt.Errorf("port %d: want 1-65535, or -1 for a dynamic port", port)}
	}
	return nil
}

func checkProvider(p string) []error {
	if p != ProviderConsul && p != ProviderNomad {
		return []error{fmt.Errorf("unknown service provider %q (want %s or %s)", p, ProviderConsul, ProviderNomad)}
	}
	return nil
}
