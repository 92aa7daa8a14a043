package deploy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/pierhq/pier/control"
)

var (
	slugInvalid = regexp.MustCompile(`[^a-z0-9]+`)
	prAliasRE   = regexp.MustCompile(`^pr-[0-9]+$`)
)

// PreviewAlias is the pointer name of a branch's previews, the first label
// of <alias>.<project>.<base-domain>: the branch lowercased, every run of
// other characters a '-' ("feature/x" → "feature-x"). A slug longer than
// 50 characters is cut and suffixed with a hash of the branch. A slug that
// could be taken for something else (empty, "production", "preview",
// "staging", a sandbox's "sandbox-...", a deployment ID "dpl-...", a fork
// pull request's "pr-<n>") is prefixed
// with "b-". Branches that differ only in punctuation share an alias.
func PreviewAlias(branch string) string {
	s := strings.Trim(slugInvalid.ReplaceAllString(strings.ToLower(branch), "-"), "-")
	if len(s) > 50 {
		sum := sha256.Sum256([]byte(branch))
		s = strings.TrimRight(s[:50], "-") + "-" + hex.EncodeToString(sum[:3])
	}
	switch {
	case s == "":
		sum := sha256.Sum256([]byte(branch))
		s = "b-" + hex.EncodeToString(sum[:3])
	case s == control.Production || s == control.Preview || s == control.Staging || strings.HasPrefix(s, "sandbox-") ||
		strings.HasPrefix(s, "dpl-") || prAliasRE.MatchString(s):
		s = "b-" + s
	}
	return s
}

// ForkAlias is the pointer name of a pull request from a fork: the fork
// names its branch, so the branch's alias could take over a preview of the
// repository's own.
func ForkAlias(number int) string { return fmt.Sprintf("pr-%d", number) }

// WebhookSecret returns a project's webhook secret, unsealed.
func (s *Service) WebhookSecret(ctx context.Context, p *control.Project) ([]byte, error) {
	if len(p.WebhookSecret) == 0 {
		return nil, fmt.Errorf("project %s has no webhook secret: %w", p.Name, control.ErrNotFound)
	}
	secret, err := s.deps.Sealer.Unseal(ctx, string(p.WebhookSecret))
	if err != nil {
		return nil, fmt.Errorf("unseal the webhook secret of %s: %w", p.Name, err)
	}
	return secret, nil
}

func (s *Service) sealNewWebhookSecret(ctx context.Context) ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	sealed, err := s.deps.Sealer.Seal(ctx, []byte("whsec_"+base64.RawURLEncoding.EncodeToString(b)))
	if err != nil {
		return nil, fmt.Errorf("seal webhook secret: %w", err)
	}
	return []byte(sealed), nil
}

// RotateWebhookSecret gives a project a new webhook secret and returns it
// (the only time it is shown): set it in the repository's webhook.
func (s *Service) RotateWebhookSecret(ctx context.Context, projectID string) (string, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return "", err
	}
	sealed, err := s.sealNewWebhookSecret(ctx)
	if err != nil {
		return "", err
	}
	p.WebhookSecret = sealed
	if err := s.deps.Store.UpdateProject(ctx, p); err != nil {
		return "", err
	}
	secret, err := s.WebhookSecret(ctx, p)
	if err != nil {
		return "", err
	}
	s.log.Info("webhook secret rotated", "project", p.ID)
	return string(secret), nil
}

// ProjectsForRepo lists the projects tracking a GitHub repository.
func (s *Service) ProjectsForRepo(ctx context.Context, repo string) ([]*control.Project, error) {
	return s.deps.Store.ProjectsByGitHubRepo(ctx, repo)
}

// RecordDelivery remembers a webhook delivery for a project; it wraps
// control.ErrConflict for one already received.
func (s *Service) RecordDelivery(ctx context.Context, projectID, deliveryID, event string) error {
	if deliveryID == "" || len(deliveryID) > 100 {
		return control.Invalid("X-GitHub-Delivery", "is missing or too long")
	}
	if err := s.deps.Store.RecordDelivery(ctx, projectID, deliveryID, event); err != nil {
		return err
	}
	s.pruneDeliveries(ctx)
	return nil
}

// pruneDeliveries forgets the deliveries older than DeliveryRetention, at
// most once an hour (or a tenth of the retention, if shorter), as
// deliveries arrive. A failure is logged: the delivery itself is recorded.
func (s *Service) pruneDeliveries(ctx context.Context) {
	now := time.Now()
	every := min(time.Hour, s.cfg.DeliveryRetention/10)
	last := s.lastPrune.Load()
	if now.UnixNano()-last < int64(every) || !s.lastPrune.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	n, err := s.deps.Store.PruneDeliveries(ctx, now.Add(-s.cfg.DeliveryRetention))
	if err != nil {
		s.log.Warn("prune webhook deliveries", "err", err)
		return
	}
	if n > 0 {
		s.log.Info("pruned webhook deliveries", "count", n, "older_than", s.cfg.DeliveryRetention)
	}
}

// ForgetDelivery drops a recorded delivery that could not be acted on, so
// GitHub's redelivery is.
func (s *Service) ForgetDelivery(ctx context.Context, projectID, deliveryID string) error {
	return s.deps.Store.ForgetDelivery(ctx, projectID, deliveryID)
}

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// Push deploys a branch that moved to sha: the production branch as
// production, any other as a preview at the branch's alias. A deployment
// of the same commit for the same target that is not failed or canceled is
// returned instead of a new one (a push and a pull request event for one
// commit deploy once).
func (s *Service) Push(ctx context.Context, projectID, branch, sha string) (*control.Deployment, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	if !validBranch(branch) {
		return nil, control.Invalid("branch", "is not a valid branch name")
	}
	if !fullSHA.MatchString(sha) {
		return nil, control.Invalid("sha", "must be a full commit SHA")
	}
	d := &control.Deployment{Ref: sha, Branch: branch, Environment: control.Production, Source: control.SourceGitHub}
	if branch != p.Branch {
		d.Environment, d.Alias = control.Preview, PreviewAlias(branch)
	}
	return s.createOnce(ctx, p, d)
}

// PullRequest is a pull request opened, reopened or updated.
type PullRequest struct {
	Number int
	Branch string // head branch
	SHA    string // head commit
	Fork   bool   // head in another repository
}

// DeployPullRequest deploys a pull request's head as a preview: at the
// branch's alias, or, from a fork, at pr-<number>, with no secrets and
// awaiting an admin's approval (Approve) before it builds.
func (s *Service) DeployPullRequest(ctx context.Context, projectID string, pr PullRequest) (*control.Deployment, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	if !fullSHA.MatchString(pr.SHA) {
		return nil, control.Invalid("sha", "must be a full commit SHA")
	}
	if pr.Number <= 0 {
		return nil, control.Invalid("number", "must be a pull request number")
	}
	d := &control.Deployment{Ref: pr.SHA, Environment: control.Preview, Source: control.SourceGitHub,
		PullRequest: pr.Number, Fork: pr.Fork}
	if pr.Fork {
		d.Alias, d.State = ForkAlias(pr.Number), control.StateAwaitingApproval
	} else {
		if !validBranch(pr.Branch) {
			return nil, control.Invalid("branch", "is not a valid branch name")
		}
		d.Branch, d.Alias = pr.Branch, PreviewAlias(pr.Branch)
	}
	return s.createOnce(ctx, p, d)
}

// createOnce creates d unless a live or pending deployment of the same
// commit already serves the same target.
func (s *Service) createOnce(ctx context.Context, p *control.Project, d *control.Deployment) (*control.Deployment, error) {
	recent, err := s.deps.Store.ListDeployments(ctx, p.ID, 50)
	if err != nil {
		return nil, err
	}
	for _, o := range recent {
		if (o.Ref == d.Ref || o.CommitSHA == d.Ref) && o.Environment == d.Environment && o.Alias == d.Alias &&
			o.State != control.StateFailed && o.State != control.StateCanceled {
			s.log.Info("commit already deployed", "project", p.ID, "deployment", o.ID, "ref", d.Ref)
			return o, nil
		}
	}
	return s.create(ctx, p, d)
}

// ClosePullRequest retires a pull request's preview.
func (s *Service) ClosePullRequest(ctx context.Context, projectID string, pr PullRequest) error {
	alias := ForkAlias(pr.Number)
	if !pr.Fork {
		alias = PreviewAlias(pr.Branch)
	}
	return s.RetirePreview(ctx, projectID, alias)
}

// RetirePreview takes a preview alias down: its URL stops serving, its
// deployments that have not run are canceled, and the edges stop syncing
// its deployments (their own <deployment-id> URLs stay, as deployments are
// immutable). Retiring an alias with nothing behind it is not an error.
func (s *Service) RetirePreview(ctx context.Context, projectID, alias string) error {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return err
	}
	if alias == "" || alias == control.Production {
		return control.Invalid("alias", "is not a preview")
	}
	r, ok := s.deps.Router.(Retirer)
	if !ok {
		return errors.New("the coordination backend cannot retire previews")
	}
	ds, err := s.deps.Store.ListDeployments(ctx, p.ID, 0)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if d.Alias != alias || d.Environment == control.Production {
			continue
		}
		if d.State == control.StateQueued || d.State == control.StateAwaitingApproval || d.State == control.StateBuilding {
			if _, err := s.Cancel(ctx, d.ID); err != nil && !errors.Is(err, control.ErrConflict) {
				return fmt.Errorf("retire preview %s: %w", alias, err)
			}
		}
	}
	if err := r.Retire(ctx, p.ID, alias); err != nil {
		return fmt.Errorf("retire preview %s: %w", alias, err)
	}
	for _, d := range ds {
		if d.Alias == alias && d.Environment != control.Production && d.State == control.StateReady {
			if err := s.deps.Router.Retract(ctx, d.ID); err != nil {
				s.log.Warn("retract retired preview", "deployment", d.ID, "err", err)
			}
		}
	}
	s.log.Info("preview retired", "project", p.ID, "alias", alias)
	return nil
}

// Approve lets a deployment awaiting approval (a pull request from a
// fork) build. It still gets no secrets.
func (s *Service) Approve(ctx context.Context, deploymentID string) (*control.Deployment, error) {
	if err := s.deps.Store.ApproveDeployment(ctx, deploymentID); err != nil {
		return nil, err
	}
	d, err := s.deps.Store.GetDeployment(ctx, deploymentID)
	if err != nil {
		return nil, err
	}
	if p, err := s.deps.Store.GetProject(ctx, d.ProjectID); err == nil {
		s.report(ctx, p, d, "pending", "Approved; queued")
	}
	s.log.Info("deployment approved", "deployment", d.ID)
	s.Kick()
	return d, nil
}
