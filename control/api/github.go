package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/github"
)

var (
	errBadSignature = errors.New("bad webhook signature")
	errTooLarge     = errors.New("request body too large")
)

// WebhookResult is what one project did with a delivery.
type WebhookResult struct {
	Project      string `json:"project"`
	Action       string `json:"action"` // "deployed", "retired", "pong", "duplicate", "ignored"
	DeploymentID string `json:"deployment_id,omitempty"`
	State        string `json:"state,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// githubWebhook takes a GitHub delivery. Nothing is read from the store
// for it but the candidate projects (by ?project= or by the payload's
// repository) and their sealed secrets; nothing is written before one of
// those secrets verifies the signature.
func (s *Server) githubWebhook(c *gin.Context) (int, any, error) {
	ctx := c.Request.Context()
	if ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); ct != "application/json" {
		return 0, nil, control.Invalid("Content-Type", "must be application/json: set the webhook's content type to application/json")
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, github.MaxPayload+1))
	if err != nil {
		return 0, nil, fmt.Errorf("read delivery: %w", err)
	}
	if len(body) > github.MaxPayload {
		return 0, nil, fmt.Errorf("%w: a delivery is at most %d bytes", errTooLarge, github.MaxPayload)
	}
	event, delivery := c.GetHeader(github.HeaderEvent), c.GetHeader(github.HeaderDelivery)
	signature := c.GetHeader(github.HeaderSignature)
	if signature == "" {
		return 0, nil, errBadSignature
	}

	var candidates []*control.Project
	if name := c.Query("project"); name != "" {
		p, err := s.deps.Deploy.Project(ctx, name)
		if err != nil && !errors.Is(err, control.ErrNotFound) {
			return 0, nil, err
		}
		if p != nil {
			candidates = append(candidates, p)
		}
	} else if repo := github.PayloadRepo(body); repo != "" {
		if candidates, err = s.deps.Deploy.ProjectsForRepo(ctx, repo); err != nil {
			return 0, nil, err
		}
	}
	var matched []*control.Project
	for _, p := range candidates {
		secret, err := s.deps.Deploy.WebhookSecret(ctx, p)
		if errors.Is(err, control.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		if github.Verify(secret, body, signature) == nil {
			matched = append(matched, p)
		}
	}
	if len(matched) == 0 {
		s.log.Warn("webhook delivery refused: bad signature", "event", event, "delivery", delivery, "candidates", len(candidates))
		return 0, nil, errBadSignature
	}

	// Authenticated from here on.
	if event == "" {
		return 0, nil, control.Invalid(github.HeaderEvent, "is missing")
	}
	ev, err := github.Parse(event, body)
	if err != nil {
		return 0, nil, control.Invalid("body", "is not a valid %s event", event)
	}
	results := []WebhookResult{}
	for _, p := range matched {
		res, err := s.actOn(c, p, ev, delivery)
		if err != nil {
			return 0, nil, err
		}
		results = append(results, res)
	}
	return http.StatusOK, gin.H{"delivery": delivery, "event": event, "results": results}, nil
}

// actOn applies one verified event to one project, once per delivery ID.
func (s *Server) actOn(c *gin.Context, p *control.Project, ev *github.Event, delivery string) (res WebhookResult, err error) {
	ctx := c.Request.Context()
	res = WebhookResult{Project: p.Name, Action: "ignored"}
	svc := s.deps.Deploy
	if err := svc.RecordDelivery(ctx, p.ID, delivery, ev.Type); err != nil {
		if errors.Is(err, control.ErrConflict) {
			res.Action, res.Reason = "duplicate", "this delivery was already received"
			return res, nil
		}
		return res, err
	}
	defer func() {
		if err != nil { // let GitHub's redelivery try again
			if ferr := svc.ForgetDelivery(ctx, p.ID, delivery); ferr != nil {
				s.log.Warn("forget failed delivery", "delivery", delivery, "err", ferr)
			}
		}
	}()
	var d *control.Deployment
	switch ev.Type {
	case github.EventPing:
		res.Action = "pong"
		return res, nil
	case github.EventPush:
		switch {
		case ev.Branch == "":
			res.Reason = "not a branch"
			return res, nil
		case ev.Deleted && ev.Branch == p.Branch:
			res.Reason = "the production branch was deleted; production stays live"
			return res, nil
		case ev.Deleted:
			if err := svc.RetirePreview(ctx, p.ID, deploy.PreviewAlias(ev.Branch)); err != nil {
				return res, err
			}
			res.Action = "retired"
			return res, nil
		}
		d, err = svc.Push(ctx, p.ID, ev.Branch, ev.SHA)
	case github.EventPullRequest:
		pr := deploy.PullRequest{Number: ev.Number, Branch: ev.Branch, SHA: ev.SHA, Fork: ev.Fork}
		switch ev.Action {
		case "opened", "reopened", "synchronize":
			d, err = svc.DeployPullRequest(ctx, p.ID, pr)
		case "closed":
			if err := svc.ClosePullRequest(ctx, p.ID, pr); err != nil {
				return res, err
			}
			res.Action = "retired"
			return res, nil
		default:
			res.Reason = "pull request " + ev.Action
			return res, nil
		}
	default:
		res.Reason = "event " + ev.Type + " is not used"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.Action, res.DeploymentID, res.State = "deployed", d.ID, string(d.State)
	return res, nil
}

func (s *Server) approve(c *gin.Context) (int, any, error) {
	ctx := c.Request.Context()
	d, err := s.deps.Deploy.Approve(ctx, c.Param("deployment"))
	if err != nil {
		return 0, nil, err
	}
	p, err := s.deps.Deploy.Project(ctx, d.ProjectID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.deployment(d, p.Name, ""), nil
}
