// Package api is control's REST API: the gin engine, the /v1 routes, the
// JSON DTOs (kept apart from the domain types), bearer-token
// authentication, and the one place where an error becomes an HTTP status.
//
// GitHub webhooks (POST /v1/webhooks/github) are the one /v1 route
// without a bearer token: a delivery is authenticated by its HMAC-SHA256
// signature with the project's webhook secret (control/github).
//
// It imports control, control/deploy and control/github, and is the only
// importer of gin. control/controld serves it.
package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/data"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/domains"
	"github.com/pierhq/pier/control/queue"
	"github.com/pierhq/pier/control/schedule"
	"github.com/pierhq/pier/control/telemetry"
)

// Tokens is the part of the store the API authenticates with.
type Tokens interface {
	TokenByHash(ctx context.Context, hash string) (*control.Token, error)
	CreateToken(ctx context.Context, t *control.Token) error
	ListTokens(ctx context.Context) ([]*control.Token, error)
}

// Config is the API's settings.
type Config struct {
	// BaseDomain is the edges' domain: projects are served at
	// <name>.<BaseDomain>, deployments at <id>.<name>.<BaseDomain>, or
	// <id>--<name>.<BaseDomain> with FlatHosts (edge.HostNames).
	BaseDomain string
	FlatHosts  bool
	// EdgeScheme and EdgePort make the URLs the API reports
	// ("http", "8080"); an empty port means the scheme's default.
	EdgeScheme string
	EdgePort   string
	// TelemetryToken is the bearer token edges ship telemetry with
	// (POST /v1/telemetry); "" refuses every shipment.
	TelemetryToken string
	Logger         *slog.Logger
}

// Deps are the services the API calls.
type Deps struct {
	Deploy *deploy.Service
	Tokens Tokens
	// Domains is the custom-domain workflow; nil answers its routes 404.
	Domains *domains.Service
	// Telemetry serves runtime logs and metrics; nil leaves those routes out.
	Telemetry *telemetry.Service
	// Data is the per-project data store (env.DATA); nil leaves its
	// routes out.
	Data *data.Service
	// Schedules serves scheduled functions' schedules and runs; nil
	// leaves its routes out.
	Schedules *schedule.Scheduler
	// Queues sends and lists queue messages; nil leaves its routes out.
	Queues *queue.Service
}

// Server is the HTTP API.
type Server struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	engine *gin.Engine
}

// New builds the API handler.
func New(cfg Config, deps Deps) *Server {
	if deps.Deploy == nil || deps.Tokens == nil {
		panic("api.New: nil dependency")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.EdgeScheme == "" {
		cfg.EdgeScheme = "http"
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: cfg, deps: deps, log: cfg.Logger.With("component", "api")}
	e := gin.New()
	e.Use(gin.Recovery(), s.requestLog)
	e.HandleMethodNotAllowed = true
	e.NoRoute(func(c *gin.Context) { writeError(c, http.StatusNotFound, "not_found", "no such endpoint") })
	e.NoMethod(func(c *gin.Context) {
		writeError(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	})
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	// Authenticated by the delivery's signature, not by a bearer token.
	e.POST("/v1/webhooks/github", s.handle(s.githubWebhook))

	v1 := e.Group("/v1", s.authenticate)
	read := v1.Group("")
	write := v1.Group("", requireScope(control.ScopeAdmin))

	read.GET("/projects", s.handle(s.listProjects))
	write.POST("/projects", s.handle(s.createProject))
	read.GET("/projects/:project", s.handle(s.getProject))
	write.DELETE("/projects/:project", s.handle(s.deleteProject))
	write.POST("/projects/:project/webhook-secret", s.handle(s.rotateWebhookSecret))

	read.GET("/projects/:project/env", s.handle(s.listEnv))
	write.PUT("/projects/:project/env/:name", s.handle(s.setEnv))
	write.DELETE("/projects/:project/env/:name", s.handle(s.deleteEnv))

	read.GET("/projects/:project/hooks", s.handle(s.listHooks))
	write.PUT("/projects/:project/hooks/:event", s.handle(s.setHook))
	write.DELETE("/projects/:project/hooks/:event", s.handle(s.deleteHook))

	read.GET("/projects/:project/domains", s.handleDomain(s.listDomains))
	write.POST("/projects/:project/domains", s.handleDomain(s.addDomain))
	read.GET("/projects/:project/domains/:domain", s.handleDomain(s.getDomain))
	write.POST("/projects/:project/domains/:domain/verify", s.handleDomain(s.verifyDomain))
	write.DELETE("/projects/:project/domains/:domain", s.handleDomain(s.deleteDomain))

	write.POST("/projects/:project/uploads", s.handle(s.checkUpload))
	write.PUT("/projects/:project/uploads/:sha256", s.handle(s.putBlob))

	read.GET("/projects/:project/deployments", s.handle(s.listDeployments))
	write.POST("/projects/:project/deployments", s.handle(s.createDeployment))
	write.POST("/projects/:project/rollback", s.handle(s.rollback))

	read.GET("/deployments/:deployment", s.handle(s.getDeployment))
	read.GET("/deployments/:deployment/logs", s.logs)
	write.POST("/deployments/:deployment/promote", s.handle(s.promote))
	write.POST("/deployments/:deployment/cancel", s.handle(s.cancel))
	write.POST("/deployments/:deployment/approve", s.handle(s.approve))

	write.POST("/admin/secrets/rewrap", s.handle(s.rewrapSecrets))

	read.GET("/whoami", s.handle(s.whoami))
	s.routeTelemetry(e, read)
	s.routeData(e, read, write)
	s.routeSchedules(e, read)
	s.routeQueues(e, read, write)

	read.GET("/tokens", s.handle(s.listTokens))
	write.POST("/tokens", s.handle(s.createToken))
	s.engine = e
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

func (s *Server) requestLog(c *gin.Context) {
	c.Next()
	s.log.Debug("request", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status())
}

// HashToken is how token secrets are stored: hex sha256.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func (s *Server) authenticate(c *gin.Context) {
	if _, ok := s.bearer(c); ok {
		c.Next()
	}
}

// bearer looks up the request's API token and sets it as "token"; when
// there is none or it is unknown it answers 401 and aborts.
func (s *Server) bearer(c *gin.Context) (*control.Token, bool) {
	h := c.GetHeader("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(secret) == "" {
		c.Header("WWW-Authenticate", `Bearer realm="pier"`)
		writeError(c, http.StatusUnauthorized, "unauthorized", "missing bearer token: send Authorization: Bearer <token>")
		c.Abort()
		return nil, false
	}
	tok, err := s.deps.Tokens.TokenByHash(c.Request.Context(), HashToken(strings.TrimSpace(secret)))
	if err != nil {
		if !errors.Is(err, control.ErrNotFound) {
			s.log.Error("token lookup", "err", err)
		}
		c.Header("WWW-Authenticate", `Bearer realm="pier", error="invalid_token"`)
		writeError(c, http.StatusUnauthorized, "unauthorized", "invalid token")
		c.Abort()
		return nil, false
	}
	c.Set("token", tok)
	return tok, true
}

func requireScope(scope control.Scope) gin.HandlerFunc {
	return func(c *gin.Context) {
		tok, _ := c.Get("token")
		if t, ok := tok.(*control.Token); !ok || (t.Scope != scope && t.Scope != control.ScopeAdmin) {
			writeError(c, http.StatusForbidden, "forbidden", "this token may not "+strings.ToLower(c.Request.Method)+" here: it needs the "+string(scope)+" scope")
			c.Abort()
			return
		}
		c.Next()
	}
}

// handle adapts a handler that returns (status, body, error).
func (s *Server) handle(fn func(*gin.Context) (int, any, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		status, body, err := fn(c)
		if err != nil {
			code, kind, msg := s.statusOf(c, err)
			writeError(c, code, kind, msg)
			return
		}
		if body == nil {
			c.Status(status)
			return
		}
		c.JSON(status, body)
	}
}

// statusOf is the only place an error becomes a status code. 5xx bodies
// never carry err.Error(); the error is logged instead.
func (s *Server) statusOf(c *gin.Context, err error) (int, string, string) {
	var ve *control.ValidationError
	switch {
	case errors.As(err, &ve):
		return http.StatusBadRequest, "invalid", ve.Error()
	case errors.Is(err, errBadJSON):
		return http.StatusBadRequest, "bad_request", err.Error()
	case errors.Is(err, errBadSignature):
		return http.StatusUnauthorized, "unauthorized", "the webhook signature (X-Hub-Signature-256) is missing or does not match any project's secret"
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large", err.Error()
	case errors.Is(err, control.ErrNotFound):
		return http.StatusNotFound, "not_found", userText(err)
	case errors.Is(err, control.ErrConflict):
		return http.StatusConflict, "conflict", userText(err)
	case errors.Is(err, control.ErrForbidden):
		return http.StatusForbidden, "forbidden", userText(err)
	case errors.Is(err, context.Canceled):
		return 499, "canceled", "request canceled"
	default:
		s.log.Error("request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
		return http.StatusInternalServerError, "internal", "internal error; see the control log"
	}
}

// userText makes a wrapped sentinel read as a sentence
// ("project \"x\" already exists: conflict" → "project \"x\" already exists",
// "project \"x\": not found" → "project \"x\" not found").
func userText(err error) string {
	msg := err.Error()
	for _, s := range []error{control.ErrConflict, control.ErrForbidden} {
		msg = strings.TrimSuffix(msg, ": "+s.Error())
	}
	return strings.ReplaceAll(msg, ": "+control.ErrNotFound.Error(), " not found")
}

var errBadJSON = errors.New("request body is not valid JSON")

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(c *gin.Context, status int, code, msg string) {
	c.JSON(status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}
