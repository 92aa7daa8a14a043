package specs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

//go:embed edge.nomad.hcl
var edgeSpec string

var edgeTmpl = parse("edge.nomad.hcl", edgeSpec)

// EdgeVars are the settings of the edge job. Zero values take the defaults
// of DefaultEdgeVars.
type EdgeVars struct {
	JobID     string // default "pier-edge"
	Namespace string // default "default" (a production cluster uses "pier")
	Region    string // "" = the region the job is submitted to
	// Datacenters the edges run in; default ["*"]: every datacenter, so a
	// new edge region's nodes get an edge as soon as they join.
	Datacenters []string
	// NodePool holds the edge machines; default "default" (production:
	// "edge", which no build and no control instance ever runs on).
	NodePool string
	// Port is the static port every edge serves on (default 8080), which
	// DNS or the load balancer of each region targets; -1 picks a dynamic
	// port (tests).
	Port int

	Driver   string // DriverDocker (default), DriverExec or DriverRawExec
	Image    string // docker only; required there
	PierPath string // default /usr/local/bin/pier
	CPU      int    // MHz, default 1000
	MemoryMB int    // default 1024 (V8 isolates)
	// CacheMB is the ephemeral disk holding the edge's content-addressed
	// cache; it is sticky, so an updated edge starts warm. Default 10240.
	CacheMB int

	// Provider registers the service "pier-edge-http" (for load balancers
	// and DNS; default consul) or in Nomad's registry. It is not the
	// "pier-edge" service the cutover counts: each edge registers that one
	// itself, with its own check, once it has synced.
	Provider string
	// Config, Env and Secrets are as in ControlVars (the Nomad Variable is
	// nomad/jobs/<JobID>: PIER_S3_SECRET_KEY, PIER_CONSUL_TOKEN...).
	Config  string
	Env     map[string]string
	Secrets bool
	// LostAfter is how long an edge whose Nomad client lost its servers
	// (a region cut off) keeps running before Nomad counts it lost;
	// default "24h". It keeps serving what it holds meanwhile.
	LostAfter string
}

// DefaultEdgeVars returns the defaults RenderEdge applies to zero fields.
func DefaultEdgeVars() EdgeVars {
	return EdgeVars{
		JobID:       "pier-edge",
		Namespace:   "default",
		Datacenters: []string{"*"},
		NodePool:    "default",
		Port:        8080,
		Driver:      DriverDocker,
		PierPath:    "/usr/local/bin/pier",
		CPU:         1000,
		MemoryMB:    1024,
		CacheMB:     10240,
		Provider:    ProviderConsul,
		LostAfter:   "24h",
	}
}

type edgeData struct {
	process
	Port, CacheMB    int
	Provider, Config string
	Secrets          bool
	LostAfter        string
}

// RenderEdge returns edge.nomad.hcl for v: the system job that runs `pier
// serve --roles edge` on every client node of the edge pool. It fails when
// v is invalid.
func RenderEdge(v EdgeVars) ([]byte, error) {
	def := DefaultEdgeVars()
	p := process{JobID: v.JobID, Namespace: v.Namespace, Region: v.Region, Datacenters: v.Datacenters,
		NodePool: v.NodePool, Driver: v.Driver, Image: v.Image, Command: v.PierPath, CPU: v.CPU,
		MemoryMB: v.MemoryMB, Env: v.Env}
	p.defaults(def.JobID, def.PierPath, def.CPU, def.MemoryMB)
	if v.Port == 0 {
		v.Port = def.Port
	}
	if v.CacheMB == 0 {
		v.CacheMB = def.CacheMB
	}
	if v.Provider == "" {
		v.Provider = def.Provider
	}
	if v.LostAfter == "" {
		v.LostAfter = def.LostAfter
	}
	errs := p.validate()
	errs = append(errs, checkPort(v.Port)...)
	errs = append(errs, checkProvider(v.Provider)...)
	if v.CacheMB < 0 {
		errs = append(errs, errors.New("cache disk must be positive"))
	}
	errs = append(errs, checkDuration("lost_after", v.LostAfter)...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("render edge job: %w", err)
	}
	p.Env = withEnv(map[string]string{
		"PIER_EDGE_ID":        "${node.unique.name}",
		"PIER_EDGE_LISTEN":    "${NOMAD_ADDR_http}",
		"PIER_EDGE_CACHE_DIR": "${NOMAD_ALLOC_DIR}/data/cache",
		"PIER_DATA_DIR":       "${NOMAD_ALLOC_DIR}/data",
	}, p.Env)
	var buf bytes.Buffer
	if err := edgeTmpl.Execute(&buf, edgeData{process: p, Port: v.Port, CacheMB: v.CacheMB,
		Provider: v.Provider, Config: v.Config, Secrets: v.Secrets, LostAfter: v.LostAfter}); err != nil {
		return nil, fmt.Errorf("render edge job: %w", err)
	}
	return hclwrite.Format(buf.Bytes()), nil
}
