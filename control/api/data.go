package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/data"
	"github.com/pierhq/pier/edge"
)

// The per-project data store:
//
//	POST   /v1/edge/data                       an env.DATA call of server code (bearer: the telemetry token)
//	GET    /v1/projects/{p}/data?stage=&prefix=&label=&after=&limit=
//	GET    /v1/projects/{p}/data/{key}?stage=
//	PUT    /v1/projects/{p}/data/{key}?stage=  {"value": …, "labels": […], "ttl": seconds}
//	DELETE /v1/projects/{p}/data/{key}?stage=
//
// stage is production (default), staging, preview or sandbox:<name>.

// maxDataBody bounds one data request: a value at its limit, escaped.
const maxDataBody = 2*control.MaxDataValueBytes + 64<<10

func (s *Server) routeData(e *gin.Engine, read, write *gin.RouterGroup) {
	if s.deps.Data == nil {
		return
	}
	e.POST("/v1/edge/data", s.telemetryAuth, s.handle(s.edgeData))
	read.GET("/projects/:project/data", s.handle(s.listData))
	read.GET("/projects/:project/data/*key", s.handle(s.getData))
	write.PUT("/projects/:project/data/*key", s.handle(s.setData))
	write.DELETE("/projects/:project/data/*key", s.handle(s.deleteData))
}

// readJSON decodes a JSON body of at most limit bytes; a larger one is a
// clear errTooLarge.
func readJSON(c *gin.Context, v any, limit int64) error {
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: at most %d bytes (a value is at most %d bytes as JSON)", errTooLarge, limit, control.MaxDataValueBytes)
		}
		return fmt.Errorf("%w: %v", errBadJSON, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %v", errBadJSON, err)
	}
	return nil
}

func (s *Server) edgeData(c *gin.Context) (int, any, error) {
	var req edge.DataCall
	if err := readJSON(c, &req, maxDataBody); err != nil {
		return 0, nil, err
	}
	out, err := s.deps.Data.Do(c.Request.Context(), data.Call{
		DeploymentID: req.DeploymentID, Method: req.Method, Key: req.Key, Value: req.Value, Labels: req.Labels,
		TTL: req.TTL, Prefix: req.Prefix, Label: req.Label, After: req.After, Limit: req.Limit,
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

func (s *Server) dataScope(c *gin.Context) (control.DataScope, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return control.DataScope{}, err
	}
	stage, err := data.ParseStage(c.Query("stage"))
	if err != nil {
		return control.DataScope{}, err
	}
	return control.DataScope{ProjectID: p.ID, Stage: stage}, nil
}

func dataKey(c *gin.Context) string { return strings.TrimPrefix(c.Param("key"), "/") }

func (s *Server) listData(c *gin.Context) (int, any, error) {
	sc, err := s.dataScope(c)
	if err != nil {
		return 0, nil, err
	}
	q := control.DataQuery{Prefix: strings.TrimSuffix(c.Query("prefix"), "*"), Label: c.Query("label"), After: c.Query("after")}
	if q.Limit, err = queryLimit(c, 0, 0); err != nil {
		return 0, nil, err
	}
	items, cursor, err := s.deps.Data.List(c.Request.Context(), sc, q)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, data.Page{Items: items, Cursor: cursor}, nil
}

func (s *Server) getData(c *gin.Context) (int, any, error) {
	sc, err := s.dataScope(c)
	if err != nil {
		return 0, nil, err
	}
	it, err := s.deps.Data.Get(c.Request.Context(), sc, dataKey(c))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, it, nil
}

type setDataRequest struct {
	Value  json.RawMessage `json:"value"`
	Labels []string        `json:"labels"`
	TTL    float64         `json:"ttl"` // seconds
}

func (s *Server) setData(c *gin.Context) (int, any, error) {
	sc, err := s.dataScope(c)
	if err != nil {
		return 0, nil, err
	}
	var req setDataRequest
	if err := readJSON(c, &req, maxDataBody); err != nil {
		return 0, nil, err
	}
	it := &control.DataItem{Key: dataKey(c), Value: req.Value, Labels: req.Labels}
	if err := s.deps.Data.Set(c.Request.Context(), sc, it, time.Duration(req.TTL*float64(time.Second))); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, it, nil
}

func (s *Server) deleteData(c *gin.Context) (int, any, error) {
	sc, err := s.dataScope(c)
	if err != nil {
		return 0, nil, err
	}
	ok, err := s.deps.Data.Delete(c.Request.Context(), sc, dataKey(c))
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, fmt.Errorf("key %q: %w", dataKey(c), control.ErrNotFound)
	}
	return http.StatusNoContent, nil, nil
}
