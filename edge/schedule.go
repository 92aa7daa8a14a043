package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is one scheduled function of a deployment (pier.json
// "schedules"): its server entry's function runs on an edge isolate once
// per period across the cluster, for the project's production deployment.
type Schedule struct {
	// Name identifies the schedule within the project (runs are listed by
	// it); default: Function, else "scheduled".
	Name string `json:"name"`
	// Cron is a cron expression, 5 fields (minute hour day-of-month month
	// day-of-week) or 6 with leading seconds, or a descriptor such as
	// "@hourly", evaluated in UTC; or "rate(N unit)" with unit second(s),
	// minute(s), hour(s) or day(s): every N units since the Unix epoch.
	Cron string `json:"cron"`
	// Function names the export that runs: a named export of the server
	// entry (export function cleanup(event, env, ctx)) or a method of its
	// default export; default "scheduled" (export default { scheduled }).
	Function string `json:"function,omitempty"`
}

// MaxSchedules bounds the schedules of one deployment.
const MaxSchedules = 50

// ParseRate parses "rate(N unit)". ok is false when expr is not a rate
// expression at all (a cron expression).
func ParseRate(expr string) (d time.Duration, ok bool, err error) {
	inner, isRate := strings.CutPrefix(strings.TrimSpace(expr), "rate(")
	if !isRate {
		return 0, false, nil
	}
	inner, closed := strings.CutSuffix(inner, ")")
	f := strings.Fields(inner)
	if !closed || len(f) != 2 {
		return 0, true, fmt.Errorf("%q: want rate(N unit), e.g. rate(1 hour)", expr)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return 0, true, fmt.Errorf("%q: N must be a positive whole number", expr)
	}
	units := map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
	u, found := units[strings.TrimSuffix(f[1], "s")]
	if !found {
		return 0, true, fmt.Errorf("%q: the unit is seconds, minutes, hours or days", expr)
	}
	return time.Duration(n) * u, true, nil
}

// RunRequest is what control sends an edge (POST /_pier/run, bearer: the
// telemetry token) to run one function of a deployment's server entry.
type RunRequest struct {
	DeploymentID string          `json:"deployment_id"`
	Function     string          `json:"function"`
	Event        json.RawMessage `json:"event"`
	RunID        string          `json:"run_id"` // the console output's request id
}

// RunResult is the edge's answer: the function's result or its error, and
// its console output.
type RunResult struct {
	Edge     string          `json:"edge"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Logs     []RunLog        `json:"logs"`
	Duration time.Duration   `json:"duration_ns"`
}

// RunLog is one console call of a run.
type RunLog struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// ErrNoSuchDeployment is returned (wrapped) when an edge does not hold a
// deployment asked for.
var ErrNoSuchDeployment = errors.New("deployment not held by this edge")
