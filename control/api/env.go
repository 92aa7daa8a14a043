package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/deploy"
)

// EnvVar is the API form of an environment variable: its name and
// metadata. There is no value field: values are write-only.
type EnvVar struct {
	Name      string           `json:"name"`
	Scope     control.EnvScope `json:"scope"`
	Targets   []string         `json:"targets"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
}

func envVar(v *control.EnvVar) EnvVar {
	return EnvVar{Name: v.Name, Scope: v.Scope, Targets: v.Targets, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
}

type setEnvRequest struct {
	Value   *string          `json:"value"`
	Scope   control.EnvScope `json:"scope"`
	Targets []string         `json:"targets"`
}

func (s *Server) setEnv(c *gin.Context) (int, any, error) {
	var req setEnvRequest
	if err := bindLimit(c, &req, deploy.MaxEnvValue*2); err != nil {
		return 0, nil, err
	}
	if req.Value == nil {
		return 0, nil, control.Invalid("value", "is required")
	}
	v, err := s.deps.Deploy.SetEnv(c.Request.Context(), c.Param("project"), deploy.EnvInput{
		Name: c.Param("name"), Value: *req.Value, Scope: req.Scope, Targets: req.Targets})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, envVar(v), nil
}

func (s *Server) listEnv(c *gin.Context) (int, any, error) {
	vars, err := s.deps.Deploy.Env(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	out := make([]EnvVar, 0, len(vars))
	for _, v := range vars {
		out = append(out, envVar(v))
	}
	return http.StatusOK, gin.H{"env": out}, nil
}

func (s *Server) deleteEnv(c *gin.Context) (int, any, error) {
	if err := s.deps.Deploy.DeleteEnv(c.Request.Context(), c.Param("project"), c.Param("name")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

type uploadRequest struct {
	Files map[string]deploy.UploadFile `json:"files"`
}

// checkUpload answers which of a file set's blobs the server lacks.
func (s *Server) checkUpload(c *gin.Context) (int, any, error) {
	var req uploadRequest
	if err := bindLimit(c, &req, 16<<20); err != nil {
		return 0, nil, err
	}
	missing, err := s.deps.Deploy.MissingBlobs(c.Request.Context(), c.Param("project"), req.Files)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"missing": missing}, nil
}

// putBlob stores one file's content under its sha256.
func (s *Server) putBlob(c *gin.Context) (int, any, error) {
	if err := s.deps.Deploy.PutBlob(c.Request.Context(), c.Param("project"), c.Param("sha256"), c.Request.Body); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
