// Package ghstatus reports commit statuses to GitHub's REST API through
// go-github: the deploy.StatusReporter of production. It is the only
// importer of go-github; main wires it into control/deploy.
package ghstatus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	gh "github.com/google/go-github/v74/github"

	"github.com/pierhq/pier/control"
)

// DefaultBaseURL is GitHub's REST API.
const DefaultBaseURL = "https://api.github.com/"

// Config configures a Client.
type Config struct {
	// BaseURL is the REST API root; default DefaultBaseURL. GitHub
	// Enterprise Server: https://<host>/api/v3/.
	BaseURL string
	// Timeout bounds one API call; default 10s.
	Timeout time.Duration
	// HTTPClient is used for every call; default a new client.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// DefaultConfig returns the settings for github.com.
func DefaultConfig() Config {
	return Config{BaseURL: DefaultBaseURL, Timeout: 10 * time.Second}
}

// Client reports commit statuses through GitHub's REST API. It is safe for
// concurrent use; each call carries the token it is given.
type Client struct {
	cfg  Config
	base *url.URL
	log  *slog.Logger
}

// New returns a Client. It starts nothing.
func New(cfg Config) (*Client, error) {
	def := DefaultConfig()
	if cfg.BaseURL == "" {
		cfg.BaseURL = def.BaseURL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if !strings.HasSuffix(cfg.BaseURL, "/") {
		cfg.BaseURL += "/"
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("github: base url %q: want an http(s) URL", cfg.BaseURL)
	}
	return &Client{cfg: cfg, base: u, log: cfg.Logger.With("component", "github")}, nil
}

// APIError is an error response from GitHub. Its message is GitHub's
// own, which never contains the token.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("github: %d %s", e.Status, e.Message)
}

// CreateStatus sets a commit status (POST /repos/{owner}/{repo}/statuses/{sha}).
// The description is cut to GitHub's 140 characters.
func (c *Client) CreateStatus(ctx context.Context, token string, st control.CommitStatus) error {
	if token == "" {
		return errors.New("github: no token to report statuses with")
	}
	if st.Owner == "" || st.Repo == "" || st.SHA == "" {
		return errors.New("github: status needs an owner, a repository and a commit")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	client := gh.NewClient(c.cfg.HTTPClient).WithAuthToken(token)
	client.BaseURL = c.base
	client.UserAgent = "pier"
	desc := st.Description
	if r := []rune(desc); len(r) > 140 {
		desc = string(r[:139]) + "…"
	}
	status := &gh.RepoStatus{State: gh.Ptr(st.State), Description: gh.Ptr(desc), Context: gh.Ptr(st.Context)}
	if st.TargetURL != "" {
		status.TargetURL = gh.Ptr(st.TargetURL)
	}
	_, resp, err := client.Repositories.CreateStatus(ctx, st.Owner, st.Repo, st.SHA, status)
	if err != nil {
		var er *gh.ErrorResponse
		if errors.As(err, &er) && er.Response != nil {
			return &APIError{Status: er.Response.StatusCode, Message: er.Message}
		}
		if resp != nil {
			return &APIError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
		}
		return fmt.Errorf("github: create status on %s/%s@%s: %w", st.Owner, st.Repo, short(st.SHA), err)
	}
	c.log.Debug("commit status set", "repo", st.Owner+"/"+st.Repo, "sha", short(st.SHA), "state", st.State)
	return nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
