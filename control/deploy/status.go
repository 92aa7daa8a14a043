package deploy

import (
	"context"
	"strings"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

// URL is the edge URL of a deployment ID, stage or preview alias of a
// project, or (label "") of its production site:
// URL("dpl-x", "www") = "https://dpl-x.www.<base-domain>" (nested) or
// "https://dpl-x--www.<base-domain>" (flat host names).
func (s *Service) URL(label, project string) string {
	names := edge.HostNames{Base: s.cfg.BaseDomain, Flat: s.cfg.FlatHosts}
	host := names.Project(project)
	if label != "" {
		host = names.Sub(label, project)
	}
	if s.cfg.EdgePort == "" {
		return s.cfg.EdgeScheme + "://" + host
	}
	return s.cfg.EdgeScheme + "://" + host + ":" + s.cfg.EdgePort
}

// report sets the commit status of d on GitHub, when the project is on
// GitHub, has a token and d's commit is known. Failures are logged: a
// status is a courtesy, never a reason to fail a deployment.
func (s *Service) report(ctx context.Context, p *control.Project, d *control.Deployment, state, description string) {
	if s.deps.Status == nil || p.GitHubRepo == "" || len(p.GitToken) == 0 {
		return
	}
	sha := d.CommitSHA
	if sha == "" && fullSHA.MatchString(d.Ref) {
		sha = d.Ref
	}
	owner, repo, ok := strings.Cut(p.GitHubRepo, "/")
	if sha == "" || !ok {
		return
	}
	log := s.log.With("project", p.ID, "deployment", d.ID)
	token, err := s.deps.Sealer.Unseal(ctx, string(p.GitToken))
	if err != nil {
		log.Warn("commit status: unseal git token", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	st := control.CommitStatus{Owner: owner, Repo: repo, SHA: sha, State: state, Description: description,
		TargetURL: s.URL(d.ID, p.Name), Context: "pier/" + p.Name}
	if err := s.deps.Status.CreateStatus(ctx, string(token), st); err != nil {
		log.Warn("commit status not reported", "state", state, "err", err)
	}
}
