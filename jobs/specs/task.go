package specs

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"text/template"
	"time"
)

// parse builds a spec template with the functions every spec uses:
//
//	hcl     a value as an HCL string literal (see quote)
//	list    a []string as an HCL list of string literals
//	secrets the consul-template text that turns the Nomad Variable
//	        nomad/jobs/<job-id> into environment variables
func parse(name, text string) *template.Template {
	return template.Must(template.New(name).
		Funcs(template.FuncMap{"hcl": quote, "list": list, "secrets": secretsTemplate, "secretsPath": SecretsVariable, "cronHeaders": cronHeaders}).
		Option("missingkey=error").
		Parse(text))
}

// withEnv returns the defaults overridden by env.
func withEnv(defaults, env map[string]string) map[string]string {
	out := make(map[string]string, len(defaults)+len(env))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// list writes ss as an HCL list of quoted strings.
func list(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// secretsTemplate is the text of a Nomad template block that renders every
// item of the Nomad Variable nomad/jobs/<jobID> as KEY="value" lines for an
// env file. A job's tasks may read that variable without any ACL policy
// (workload identity), and nobody who may only read the job sees it. Nomad
// holds the task until the variable exists.
func secretsTemplate(jobID string) string {
	return `{{ with nomadVar "nomad/jobs/` + jobID + `" }}{{ range .Tuples }}{{ .K }}={{ .V | toJSON }}` + "\n" +
		`{{ end }}{{ end }}`
}

// SecretsVariable is the Nomad Variable path whose items a job with
// Secrets set receives as environment variables, e.g. PIER_S3_SECRET_KEY,
// PIER_CONSUL_TOKEN.
func SecretsVariable(jobID string) string { return "nomad/jobs/" + jobID }

// process is what the control, edge and cron jobs share about how their
// task runs and where.
type process struct {
	JobID       string
	Namespace   string
	Region      string
	Datacenters []string
	NodePool    string
	Driver      string
	Image       string
	Command     string // absolute path of the program
	CPU         int
	MemoryMB    int
	Env         map[string]string
}

// defaults fills p's zero fields.
func (p *process) defaults(jobID, command string, cpu, memoryMB int) {
	if p.JobID == "" {
		p.JobID = jobID
	}
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	if len(p.Datacenters) == 0 {
		p.Datacenters = []string{"*"}
	}
	if p.NodePool == "" {
		p.NodePool = "default"
	}
	if p.Driver == "" {
		p.Driver = DriverDocker
	}
	if p.Command == "" {
		p.Command = command
	}
	if p.CPU == 0 {
		p.CPU = cpu
	}
	if p.MemoryMB == 0 {
		p.MemoryMB = memoryMB
	}
}

// validate checks what every job needs.
func (p *process) validate() []error {
	var errs []error
	if p.JobID == "" || strings.ContainsAny(p.JobID, " \t\n\"/") || len(p.JobID) > 128 {
		errs = append(errs, fmt.Errorf("job id %q: want at most 128 characters, no spaces, quotes or slashes", p.JobID))
	}
	for k := range p.Env {
		if !envName.MatchString(k) {
			errs = append(errs, fmt.Errorf("env: %q is not a variable name", k))
		}
	}
	switch p.Driver {
	case DriverDocker:
		if p.Image == "" {
			errs = append(errs, errors.New("the docker driver needs an image"))
		}
	case DriverExec, DriverRawExec:
		if p.Image != "" {
			errs = append(errs, fmt.Errorf("an image is only used by the docker driver, not %s", p.Driver))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown driver %q (want %s, %s or %s)", p.Driver, DriverDocker, DriverExec, DriverRawExec))
	}
	if !path.IsAbs(p.Command) {
		errs = append(errs, fmt.Errorf("program path %q is not absolute", p.Command))
	}
	if p.CPU < 0 || p.MemoryMB < 0 {
		errs = append(errs, errors.New("cpu and memory must be positive"))
	}
	for _, dc := range p.Datacenters {
		if dc == "" {
			errs = append(errs, errors.New("empty datacenter name"))
		}
	}
	return errs
}

// checkDuration accepts Nomad durations such as "30s", "15m", "24h".
func checkDuration(name, d string) []error {
	if _, err := time.ParseDuration(d); err != nil || strings.HasPrefix(d, "-") || d == "0" {
		return []error{fmt.Errorf("%s: %q is not a duration like 30s or 24h", name, d)}
	}
	return nil
}
