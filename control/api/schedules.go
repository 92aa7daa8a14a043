package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/schedule"
)

// Scheduled functions:
//
//	GET  /v1/projects/{p}/schedules                   the live production deployment's schedules, next period
//	GET  /v1/projects/{p}/schedules/runs?schedule=&limit=   runs, latest first, with result, error and console output
//	POST /v1/projects/{p}/schedules/{name}/run        fire now ({"period": RFC 3339} fires that period once;
//	                                                  {"launch": "<job>/periodic-<unix>"} fires a Nomad periodic
//	                                                  launch's period once: what the schedule's job calls)
//
// The run endpoint takes an admin API token, or the schedule's own cron
// token (schedule.CronToken, what its Nomad periodic job sends), which
// opens nothing else and only with a launch.

func (s *Server) routeSchedules(e *gin.Engine, read *gin.RouterGroup) {
	if s.deps.Schedules == nil {
		return
	}
	read.GET("/projects/:project/schedules", s.handle(s.listSchedules))
	read.GET("/projects/:project/schedules/runs", s.handle(s.listRuns))
	e.POST("/v1/projects/:project/schedules/:name/run", s.runAuth, s.handle(s.runSchedule))
}

// runAuth admits the schedule's cron token for its own schedule, else an
// admin API token.
func (s *Server) runAuth(c *gin.Context) {
	secret, _ := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	secret = strings.TrimSpace(secret)
	if !strings.HasPrefix(secret, schedule.CronTokenPrefix) {
		if _, ok := s.bearer(c); !ok {
			return
		}
		requireScope(control.ScopeAdmin)(c)
		return
	}
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil || !s.deps.Schedules.CronTokenValid(p.ID, c.Param("name"), secret) {
		c.Header("WWW-Authenticate", `Bearer realm="pier", error="invalid_token"`)
		writeError(c, http.StatusUnauthorized, "unauthorized", "invalid token: a schedule's cron token opens only that schedule's run endpoint")
		c.Abort()
		return
	}
	c.Set("cron_token", true)
	c.Next()
}

func (s *Server) listSchedules(c *gin.Context) (int, any, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	list, err := s.deps.Schedules.List(c.Request.Context(), p.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"schedules": list}, nil
}

func (s *Server) listRuns(c *gin.Context) (int, any, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryLimit(c, 0, 1000)
	if err != nil {
		return 0, nil, err
	}
	runs, err := s.deps.Schedules.Runs(c.Request.Context(), p.ID, c.Query("schedule"), limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"runs": runs}, nil
}

type runScheduleRequest struct {
	Period string `json:"period"`
	// Launch is a Nomad periodic launch's job id (${NOMAD_JOB_ID}).
	Launch string `json:"launch"`
}

func (s *Server) runSchedule(c *gin.Context) (int, any, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	var req runScheduleRequest
	if c.Request.ContentLength != 0 {
		if err := bindLimit(c, &req, 4<<10); err != nil {
			return 0, nil, err
		}
	}
	if _, cron := c.Get("cron_token"); cron && req.Launch == "" {
		return 0, nil, control.Invalid("launch", "a cron token runs its schedule only for a Nomad launch: send {\"launch\": \"${NOMAD_JOB_ID}\"}")
	}
	if req.Launch != "" {
		if req.Period != "" {
			return 0, nil, control.Invalid("period", "send a period or a launch, not both")
		}
		run, err := s.deps.Schedules.TriggerLaunch(c.Request.Context(), p, c.Param("name"), req.Launch)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusAccepted, run, nil
	}
	var at time.Time
	if req.Period != "" {
		if at, err = time.Parse(time.RFC3339Nano, req.Period); err != nil {
			return 0, nil, control.Invalid("period", "want an RFC 3339 time, not %q", req.Period)
		}
	}
	run, err := s.deps.Schedules.Trigger(c.Request.Context(), p, c.Param("name"), at)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, run, nil
}
