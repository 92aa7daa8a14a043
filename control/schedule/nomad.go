package schedule

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

// The timers that can time a schedule (Config.Timer).
const (
	// TimerBuiltin: the leader-locked scheduler in control times every
	// schedule (the default, and pier dev).
	TimerBuiltin = "builtin"
	// TimerNomad: a Nomad periodic job per schedule times it and calls
	// the run endpoint with its launch id; control only keeps the jobs in
	// step with the live deployments (Deps.Periodic).
	TimerNomad = "nomad"
)

// The triggers a run records (control.ScheduleRun.Trigger).
const (
	TriggerSchedule = "schedule" // the builtin timer
	TriggerAPI      = "api"      // POST .../run by someone with an admin token
	TriggerNomad    = "nomad"    // a Nomad periodic launch ({"launch": "${NOMAD_JOB_ID}"})
)

// PeriodicJob is one schedule handed to an outside timer: a Nomad
// periodic job that calls the run endpoint on Cron with Token.
type PeriodicJob struct {
	ID        string // JobID(ProjectID, Project, Schedule)
	Project   string // the project's name (the run endpoint's path)
	ProjectID string
	Schedule  string
	Expr      string // the schedule's own expression (pier.json)
	// Cron is the schedule in five fields (minute hour day-of-month month
	// day-of-week), UTC: what Nomad's periodic block takes.
	Cron string
	// Token is the bearer the launched call sends (CronToken): it may run
	// this one schedule and nothing else.
	Token string
}

// PeriodicJobs keeps the outside timer's jobs in step with the schedules
// (nomaddispatch.Crons, through main).
type PeriodicJobs interface {
	// Sync registers or updates every job of want and removes the jobs it
	// manages that want does not name. want may be empty (remove all).
	Sync(ctx context.Context, want []PeriodicJob) error
}

// JobIDPrefix starts the id of every periodic job control manages.
const JobIDPrefix = "pier-cron-"

// JobID is the periodic job of a project's schedule:
// "pier-cron-<project>-<schedule>-<hash>". The hash (8 hex digits of the
// project's id and the schedule) keeps two pairs that read alike apart
// ("a-b"/"c" and "a"/"b-c") and a recreated project's job new; the
// readable part is cut to keep the id under 100 characters, well inside
// Nomad's limit.
func JobID(projectID, project, schedule string) string {
	sum := sha256.Sum256([]byte(projectID + "\x00" + schedule))
	readable := project + "-" + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, schedule)
	if len(readable) > 80 {
		readable = readable[:80]
	}
	return JobIDPrefix + readable + "-" + hex.EncodeToString(sum[:4])
}

// launchSuffix is what Nomad puts between a periodic job's id and the
// launch's unix time in the id of each child it launches.
const launchSuffix = "/periodic-"

// ParseLaunch reads a Nomad periodic launch's job id
// ("<parent>/periodic-<unix seconds>", what ${NOMAD_JOB_ID} is in the
// launched task) into its parent job and its period.
func ParseLaunch(launch string) (parent string, period time.Time, err error) {
	i := strings.LastIndex(launch, launchSuffix)
	if i <= 0 {
		return "", time.Time{}, control.Invalid("launch", "%q is not a Nomad periodic launch id like pier-cron-x/periodic-1700000000", launch)
	}
	secs, perr := strconv.ParseInt(launch[i+len(launchSuffix):], 10, 64)
	if perr != nil || secs <= 0 || secs > 1<<40 {
		return "", time.Time{}, control.Invalid("launch", "%q does not end in a launch time (unix seconds)", launch)
	}
	return launch[:i], time.Unix(secs, 0).UTC(), nil
}

// CronToken is the bearer a schedule's periodic job sends: an HMAC of the
// project's id and the schedule's name under key (schedules.token_key),
// so every control can check it without storing it, and it opens only
// that schedule's run endpoint.
func CronToken(key, projectID, schedule string) string {
	m := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(m, "pier-cron\x00%s\x00%s", projectID, schedule)
	return CronTokenPrefix + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CronTokenPrefix starts every CronToken, so the API can tell it from an
// API token without a lookup.
const CronTokenPrefix = "pcron_"

// NomadCron returns expr as a five-field cron for Nomad's periodic block
// that fires at exactly the same instants (UTC), or "" and the reason the
// schedule must stay on the builtin timer: seconds, rates that no cron
// expression matches, @every, time zone prefixes.
func NomadCron(expr string) (string, string) {
	expr = strings.TrimSpace(expr)
	if d, ok, err := edge.ParseRate(expr); ok {
		if err != nil {
			return "", err.Error()
		}
		return rateCron(d)
	}
	switch expr {
	case "@yearly", "@annually":
		return "0 0 1 1 *", ""
	case "@monthly":
		return "0 0 1 * *", ""
	case "@weekly":
		return "0 0 * * 0", ""
	case "@daily", "@midnight":
		return "0 0 * * *", ""
	case "@hourly":
		return "0 * * * *", ""
	}
	if strings.HasPrefix(expr, "@") {
		return "", fmt.Sprintf("%q has no cron equivalent for Nomad (@every counts from when control started)", expr)
	}
	if _, err := Parse(expr); err != nil {
		return "", err.Error()
	}
	f := strings.Fields(expr)
	if strings.Contains(f[0], "=") {
		return "", fmt.Sprintf("%q: a time zone prefix is not handed to Nomad", expr)
	}
	switch len(f) {
	case 5:
		return strings.Join(f, " "), ""
	case 6:
		if f[0] == "0" { // seconds: only at second 0, i.e. a five-field cron
			return strings.Join(f[1:], " "), ""
		}
		return "", fmt.Sprintf("%q fires more often than once a minute: Nomad's periodic jobs time minutes", expr)
	}
	return "", fmt.Sprintf("%q is not a cron expression Nomad takes", expr)
}

// rateCron is the cron of an epoch-aligned rate: every d since the Unix
// epoch. A minute count that divides an hour, an hour count that divides
// a day, one day, and seven days (the epoch was a Thursday) have one.
func rateCron(d time.Duration) (string, string) {
	const day = 24 * time.Hour
	switch {
	case d%time.Minute != 0:
		return "", fmt.Sprintf("rate of %v is not whole minutes: Nomad's periodic jobs time minutes", d)
	case d == time.Minute:
		return "* * * * *", ""
	case d < time.Hour && time.Hour%d == 0:
		return fmt.Sprintf("*/%d * * * *", d/time.Minute), ""
	case d == time.Hour:
		return "0 * * * *", ""
	case d < day && d%time.Hour == 0 && day%d == 0:
		return fmt.Sprintf("0 */%d * * *", d/time.Hour), ""
	case d == day:
		return "0 0 * * *", ""
	case d == 7*day:
		return "0 0 * * 4", "" // 1970-01-01 was a Thursday
	}
	return "", fmt.Sprintf("rate of %v has no cron expression with the same periods (every %v since the Unix epoch)", d, d)
}
