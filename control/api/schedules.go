package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
)

// Scheduled functions:
//
//	GET  /v1/projects/{p}/schedules                   the live production deployment's schedules, next period
//	GET  /v1/projects/{p}/schedules/runs?schedule=&limit=   runs, latest first, with result, error and console output
//	POST /v1/projects/{p}/schedules/{name}/run        fire now ({"period": RFC 3339} fires that period once:
//	                                                  what a Nomad periodic job calls, retries included)

func (s *Server) routeSchedules(read, write *gin.RouterGroup) {
	if s.deps.Schedules == nil {
		return
	}
	read.GET("/projects/:project/schedules", s.handle(s.listSchedules))
	read.GET("/projects/:project/schedules/runs", s.handle(s.listRuns))
	write.POST("/projects/:project/schedules/:name/run", s.handle(s.runSchedule))
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
	limit := 0
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit <= 0 || limit > 1000 {
			return 0, nil, control.Invalid("limit", "want 1 to 1000, not %q", v)
		}
	}
	runs, err := s.deps.Schedules.Runs(c.Request.Context(), p.ID, c.Query("schedule"), limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"runs": runs}, nil
}

type runScheduleRequest struct {
	Period string `json:"period"`
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
