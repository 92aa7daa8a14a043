package specs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

//go:embed cron.nomad.hcl
var cronSpec string

var cronTmpl = parse("cron.nomad.hcl", cronSpec)

// CronVars are the settings of one scheduled function's periodic job.
// Zero values take the defaults of DefaultCronVars.
type CronVars struct {
	// JobID names the job (required), e.g. "pier-cron-<project>-<name>":
	// one job per schedule, so each fires once across the fleet.
	JobID       string
	Namespace   string   // default "default"
	Region      string   // "" = the region the job is submitted to
	Datacenters []string // default ["*"]
	NodePool    string   // default "default" (production: "control")

	// Schedule is a cron expression in Nomad's syntax (required), e.g.
	// "*/5 * * * *", evaluated in TimeZone (default "UTC").
	Schedule string
	TimeZone string
	// URL is the function's address on the edges (required): the
	// project's public URL and the function's path, e.g.
	// https://shop.pier.example.com/api/cron/cleanup.
	URL string
	// Host overrides the Host header, for a URL that names an edge or a
	// load balancer rather than the project (http only).
	Host string
	// Method is the HTTP method; default POST.
	Method string
	// Body is sent as the request's JSON body (Content-Type:
	// application/json); it may use Nomad runtime variables, e.g.
	// {"launch": "${NOMAD_JOB_ID}"}: control's run endpoint then takes the
	// period from the launch's id. "" sends no body.
	Body string
	// Timeout bounds the whole request; default 30s (the functions'
	// default timeout).
	Timeout string
	// Project and Name label the job (meta) for the Nomad UI.
	Project, Name string

	// Driver runs curl: DriverDocker (default, with Image, e.g. a curl
	// image), DriverExec or DriverRawExec (the node's curl).
	Driver   string
	Image    string
	CurlPath string // default /usr/bin/curl
	CPU      int    // MHz, default 50
	MemoryMB int    // default 64
	// Secrets sends "Authorization: Bearer <PIER_CRON_SECRET>" from the
	// Nomad Variable nomad/jobs/<JobID>, so the function can tell the
	// scheduler's calls from anyone else's. The job waits until the
	// variable exists.
	Secrets bool
}

// DefaultCronVars returns the defaults RenderCron applies to zero fields.
func DefaultCronVars() CronVars {
	return CronVars{
		Namespace:   "default",
		Datacenters: []string{"*"},
		NodePool:    "default",
		TimeZone:    "UTC",
		Method:      http.MethodPost,
		Timeout:     "30s",
		Driver:      DriverDocker,
		CurlPath:    "/usr/bin/curl",
		CPU:         50,
		MemoryMB:    64,
	}
}

// CronSecretKey is the item of the job's Nomad Variable that holds the
// bearer token a scheduled call carries (with CronVars.Secrets).
const CronSecretKey = "PIER_CRON_SECRET"

type cronData struct {
	process
	Schedule, TimeZone string
	Secrets            bool
	Args               []string
	Meta               map[string]string
}

// RenderCron returns cron.nomad.hcl for v: a periodic batch job that calls
// the function at v.URL on schedule, never two runs at once. It fails when
// v is invalid.
func RenderCron(v CronVars) ([]byte, error) {
	def := DefaultCronVars()
	p := process{JobID: v.JobID, Namespace: v.Namespace, Region: v.Region, Datacenters: v.Datacenters,
		NodePool: v.NodePool, Driver: v.Driver, Image: v.Image, Command: v.CurlPath, CPU: v.CPU,
		MemoryMB: v.MemoryMB}
	var errs []error
	if v.JobID == "" {
		errs = append(errs, errors.New("a job id is required"))
		p.JobID = "-"
	}
	p.defaults("", def.CurlPath, def.CPU, def.MemoryMB)
	if v.TimeZone == "" {
		v.TimeZone = def.TimeZone
	}
	if v.Method == "" {
		v.Method = def.Method
	}
	if v.Timeout == "" {
		v.Timeout = def.Timeout
	}
	errs = append(errs, p.validate()...)
	if len(strings.Fields(v.Schedule)) < 5 {
		errs = append(errs, fmt.Errorf("schedule %q is not a cron expression like \"*/5 * * * *\"", v.Schedule))
	}
	if _, err := time.LoadLocation(v.TimeZone); err != nil {
		errs = append(errs, fmt.Errorf("time zone %q: %w", v.TimeZone, err))
	}
	u, err := url.Parse(v.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url %q is not an http(s) URL", v.URL))
	} else if v.Host != "" && u.Scheme != "http" {
		errs = append(errs, errors.New("a host override needs an http URL (with https the certificate names the URL's host)"))
	}
	if v.Method != strings.ToUpper(v.Method) || strings.ContainsAny(v.Method, " \t\r\n") {
		errs = append(errs, fmt.Errorf("method %q: want an upper-case HTTP method", v.Method))
	}
	if strings.ContainsAny(v.Host, " \t\r\n") {
		errs = append(errs, fmt.Errorf("host %q is not a host name", v.Host))
	}
	timeout, err := time.ParseDuration(v.Timeout)
	if err != nil || timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %q is not a duration like 30s", v.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("render cron job: %w", err)
	}

	args := []string{"--fail", "--silent", "--show-error", "--location", "--max-redirs", "3",
		"--max-time", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64),
		"--request", v.Method,
		"--header", "User-Agent: pier-cron",
		"--header", "X-Pier-Cron: " + p.JobID}
	if v.Host != "" {
		args = append(args, "--header", "Host: "+v.Host)
	}
	if v.Secrets {
		args = append(args, "--header", "@${NOMAD_SECRETS_DIR}/cron.headers")
	}
	if v.Body != "" {
		args = append(args, "--header", "Content-Type: application/json", "--data-raw", v.Body)
	}
	args = append(args, v.URL)
	meta := map[string]string{}
	if v.Project != "" {
		meta["pier_project"] = v.Project
	}
	if v.Name != "" {
		meta["pier_schedule"] = v.Name
	}
	var buf bytes.Buffer
	if err := cronTmpl.Execute(&buf, cronData{process: p, Schedule: v.Schedule, TimeZone: v.TimeZone,
		Secrets: v.Secrets, Args: args, Meta: meta}); err != nil {
		return nil, fmt.Errorf("render cron job: %w", err)
	}
	return hclwrite.Format(buf.Bytes()), nil
}

// cronHeaders is the template of the Authorization header file.
func cronHeaders(jobID string) string {
	return `{{ with nomadVar "nomad/jobs/` + jobID + `" }}Authorization: Bearer {{ .` + CronSecretKey + ` }}{{ end }}` + "\n"
}
