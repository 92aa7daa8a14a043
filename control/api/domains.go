package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/domains"
)

// Domain is the API form of a custom domain, with the DNS records that
// verify it (the TXT challenge, and a CNAME or A/AAAA records to the
// edges; one of the pointing records is enough).
type Domain struct {
	Name       string              `json:"name"`
	State      control.DomainState `json:"state"`
	Token      string              `json:"token"`
	Records    []domains.Record    `json:"records"`
	URL        string              `json:"url"`
	CreatedAt  time.Time           `json:"created_at"`
	VerifiedAt *time.Time          `json:"verified_at,omitempty"`
}

func (s *Server) domain(d *control.Domain, projectName string) Domain {
	out := Domain{Name: d.Name, State: d.State, Token: d.Token, URL: "https://" + d.Name,
		Records: s.deps.Domains.Records(d, projectName), CreatedAt: d.CreatedAt}
	if !d.VerifiedAt.IsZero() {
		v := d.VerifiedAt
		out.VerifiedAt = &v
	}
	return out
}

type addDomainRequest struct {
	Name string `json:"name"`
}

// handleDomain is handle with the domain workflow's own error codes: a
// claim conflict is 409 with its code (domain_taken, domain_claimed,
// domain_exists), a failed DNS check 422 with its reason.
func (s *Server) handleDomain(fn func(*gin.Context) (int, any, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.deps.Domains == nil {
			writeError(c, http.StatusNotFound, "not_found", "custom domains are not enabled on this server")
			return
		}
		status, body, err := fn(c)
		switch {
		case err != nil && domainError(c, err):
		case err != nil:
			code, kind, msg := s.statusOf(c, err)
			writeError(c, code, kind, msg)
		case body == nil:
			c.Status(status)
		default:
			c.JSON(status, body)
		}
	}
}

// domainError maps the workflow's own errors; ok is false for the others
// (handle maps those).
func domainError(c *gin.Context, err error) bool {
	var claim *domains.ClaimError
	var check *domains.CheckError
	switch {
	case errors.As(err, &claim):
		writeError(c, http.StatusConflict, claim.Code, claim.Message)
	case errors.As(err, &check):
		writeError(c, http.StatusUnprocessableEntity, check.Code, check.Message)
	default:
		return false
	}
	return true
}

func (s *Server) addDomain(c *gin.Context) (int, any, error) {
	var req addDomainRequest
	if err := bind(c, &req); err != nil {
		return 0, nil, err
	}
	d, err := s.deps.Domains.Add(c.Request.Context(), c.Param("project"), req.Name)
	if err != nil {
		return 0, nil, err
	}
	p, err := s.deps.Deploy.Project(c.Request.Context(), d.ProjectID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, s.domain(d, p.Name), nil
}

func (s *Server) listDomains(c *gin.Context) (int, any, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	ds, err := s.deps.Domains.Domains(c.Request.Context(), p.ID)
	if err != nil {
		return 0, nil, err
	}
	out := make([]Domain, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.domain(d, p.Name))
	}
	return http.StatusOK, gin.H{"domains": out}, nil
}

func (s *Server) getDomain(c *gin.Context) (int, any, error) {
	d, p, err := s.deps.Domains.Domain(c.Request.Context(), c.Param("project"), c.Param("domain"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.domain(d, p.Name), nil
}

func (s *Server) verifyDomain(c *gin.Context) (int, any, error) {
	d, err := s.deps.Domains.Verify(c.Request.Context(), c.Param("project"), c.Param("domain"))
	if err != nil {
		return 0, nil, err
	}
	p, err := s.deps.Deploy.Project(c.Request.Context(), d.ProjectID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.domain(d, p.Name), nil
}

func (s *Server) deleteDomain(c *gin.Context) (int, any, error) {
	if err := s.deps.Domains.Delete(c.Request.Context(), c.Param("project"), c.Param("domain")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
