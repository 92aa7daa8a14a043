package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/deploy"
)

// Hook is the API form of a deployment lifecycle hook. Its code is not
// secret, so it is returned.
type Hook struct {
	Event     control.HookEvent `json:"event"`
	Code      string            `json:"code"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

func hook(h *control.Hook) Hook {
	return Hook{Event: h.Event, Code: h.Code, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt}
}

type setHookRequest struct {
	Code string `json:"code"`
}

// setHook creates or replaces the hook of /projects/:project/hooks/:event.
func (s *Server) setHook(c *gin.Context) (int, any, error) {
	var req setHookRequest
	// JSON escaping can double the code's size (more for control
	// characters); the service bounds the decoded code.
	if err := bindLimit(c, &req, 3*deploy.MaxHookCode); err != nil {
		return 0, nil, err
	}
	h, err := s.deps.Deploy.SetHook(c.Request.Context(), c.Param("project"), control.HookEvent(c.Param("event")), req.Code)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, hook(h), nil
}

func (s *Server) listHooks(c *gin.Context) (int, any, error) {
	hs, err := s.deps.Deploy.Hooks(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	out := make([]Hook, 0, len(hs))
	for _, h := range hs {
		out = append(out, hook(h))
	}
	return http.StatusOK, gin.H{"hooks": out}, nil
}

func (s *Server) deleteHook(c *gin.Context) (int, any, error) {
	if err := s.deps.Deploy.DeleteHook(c.Request.Context(), c.Param("project"), control.HookEvent(c.Param("event"))); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
