package deploy

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pierhq/pier/control"
)

// EnvInput sets one environment variable.
type EnvInput struct {
	Name  string
	Value string // plaintext; sealed before it is stored, never returned
	// Scope: build, runtime or both (default both).
	Scope control.EnvScope
	// Targets: "production", "preview", "staging", "sandbox" (every
	// sandbox), "branch:<name>" (previews of that branch); default
	// production and preview. Staging and sandboxes also get the preview
	// variables.
	Targets []string
}

// MaxEnvValue bounds one variable's value.
const MaxEnvValue = 64 << 10

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)

// SetEnv creates or replaces a project's variable, sealing its value with
// a fresh nonce (the secrets port's encryption). Existing deployments keep
// the environment they were created with; a new deployment picks it up.
func (s *Service) SetEnv(ctx context.Context, projectID string, in EnvInput) (*control.EnvVar, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	if !envNameRE.MatchString(in.Name) {
		return nil, control.Invalid("name", "must be letters, digits and '_', not starting with a digit (at most 256)")
	}
	if strings.HasPrefix(strings.ToUpper(in.Name), "PIER_") {
		return nil, control.Invalid("name", "PIER_ is reserved")
	}
	if len(in.Value) > MaxEnvValue || strings.ContainsRune(in.Value, 0) {
		return nil, control.Invalid("value", "must be at most %d bytes, without NUL", MaxEnvValue)
	}
	switch in.Scope {
	case "":
		in.Scope = control.EnvBoth
	case control.EnvBuild, control.EnvRuntime, control.EnvBoth:
	default:
		return nil, control.Invalid("scope", "must be build, runtime or both")
	}
	targets, err := cleanTargets(in.Targets)
	if err != nil {
		return nil, err
	}
	sealed, err := s.deps.Sealer.Seal(ctx, []byte(in.Value))
	if err != nil {
		return nil, fmt.Errorf("seal variable %s: %w", in.Name, err)
	}
	v := &control.EnvVar{ProjectID: p.ID, Name: in.Name, Sealed: sealed, Scope: in.Scope, Targets: targets,
		UpdatedAt: time.Now().UTC()}
	if err := s.deps.Store.PutEnvVar(ctx, v); err != nil {
		return nil, fmt.Errorf("set variable %s: %w", in.Name, err)
	}
	s.log.Info("variable set", "project", p.ID, "name", v.Name, "scope", v.Scope, "targets", v.Targets)
	return v, nil
}

func cleanTargets(in []string) ([]string, error) {
	if len(in) == 0 {
		return []string{control.Production, control.Preview}, nil
	}
	out := []string{}
	for _, t := range in {
		if branch, ok := strings.CutPrefix(t, control.TargetBranchPrefix); ok {
			if !validBranch(branch) {
				return nil, control.Invalid("targets", "%q: not a valid branch name", branch)
			}
		} else if t != control.Production && t != control.Preview && t != control.Staging && t != control.Sandbox {
			return nil, control.Invalid("targets", "%q: must be production, preview, staging, sandbox or branch:<name>", t)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Env lists a project's variables: names and metadata. The sealed values
// are cleared; the API has no way to read a value back.
func (s *Service) Env(ctx context.Context, projectID string) ([]*control.EnvVar, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	vars, err := s.deps.Store.ListEnvVars(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	for _, v := range vars {
		v.Sealed = ""
	}
	return vars, nil
}

// DeleteEnv removes a project's variable. Existing deployments keep it.
func (s *Service) DeleteEnv(ctx context.Context, projectID, name string) error {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return err
	}
	if err := s.deps.Store.DeleteEnvVar(ctx, p.ID, name); err != nil {
		return err
	}
	s.log.Info("variable deleted", "project", p.ID, "name", name)
	return nil
}

// applies reports whether a variable with targets reaches a deployment of
// environment env made from branch.
func applies(targets []string, env, branch string) bool {
	for _, t := range targets {
		switch {
		case t == env:
			return true
		case env == control.Preview && branch != "" && t == control.TargetBranchPrefix+branch:
			return true
		case (env == control.Staging || env == control.Sandbox) && t == control.Preview:
			return true
		}
	}
	return false
}

// resolveEnv picks the project's variables that reach a deployment of env
// from branch, sealed, to be frozen with it.
func (s *Service) resolveEnv(ctx context.Context, projectID, env, branch string) ([]control.DeploymentEnv, error) {
	vars, err := s.deps.Store.ListEnvVars(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("resolve variables: %w", err)
	}
	out := []control.DeploymentEnv{}
	for _, v := range vars {
		if applies(v.Targets, env, branch) {
			out = append(out, control.DeploymentEnv{Name: v.Name, Scope: v.Scope, Sealed: v.Sealed})
		}
	}
	return out, nil
}

// buildEnv unseals the build-scoped variables frozen with a deployment,
// just before its build is dispatched.
func (s *Service) buildEnv(ctx context.Context, deploymentID string) (map[string]string, error) {
	frozen, err := s.deps.Store.DeploymentEnv(ctx, deploymentID)
	if err != nil {
		return nil, err
	}
	var env map[string]string
	for _, e := range frozen {
		if !e.Scope.InBuild() {
			continue
		}
		plain, err := s.deps.Sealer.Unseal(ctx, e.Sealed)
		if err != nil {
			return nil, fmt.Errorf("unseal variable %s: %w", e.Name, err)
		}
		if env == nil {
			env = map[string]string{}
		}
		env[e.Name] = string(plain)
	}
	return env, nil
}

// RuntimeEnv returns the runtime-scoped variables frozen with a
// deployment, still sealed (name → ciphertext): what the edge decrypts for
// the deployment's isolates. They are also published next to the manifest
// (RuntimeEnvKey) when the deployment is ready.
func (s *Service) RuntimeEnv(ctx context.Context, deploymentID string) (map[string]string, error) {
	frozen, err := s.deps.Store.DeploymentEnv(ctx, deploymentID)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range frozen {
		if e.Scope.InRuntime() {
			out[e.Name] = e.Sealed
		}
	}
	return out, nil
}
