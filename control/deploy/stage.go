package deploy

import (
	"regexp"
	"strings"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

var sandboxRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// Stage maps the environment a client asks for to the deployment's
// environment and alias (the pointer it goes live at, served at
// <alias>.<project>.<base-domain>):
//
//	"" or "production" → production, no alias (<project>.<base-domain>)
//	"preview"          → preview, the branch's alias (none for a bare commit)
//	"staging"          → staging, alias "staging"
//	"sandbox:<name>"   → sandbox, alias "sandbox-<name>" (name: 1-32 of a-z, 0-9, '-')
//
// Branch previews never take the staging or sandbox aliases (PreviewAlias).
func Stage(environment, branch string) (env, alias string, err error) {
	switch {
	case environment == "" || environment == control.Production:
		return control.Production, "", nil
	case environment == control.Preview:
		if branch != "" {
			alias = PreviewAlias(branch)
		}
		return control.Preview, alias, nil
	case environment == control.Staging:
		return control.Staging, control.Staging, nil
	case strings.HasPrefix(environment, control.SandboxPrefix):
		name := strings.TrimPrefix(environment, control.SandboxPrefix)
		if !sandboxRE.MatchString(name) || strings.Contains(name, edge.FlatSeparator) {
			return "", "", control.Invalid("environment", "sandbox:%q: a sandbox's name is 1-32 lowercase letters, digits or '-', not starting or ending with '-', without '--'", name)
		}
		return control.Sandbox, "sandbox-" + name, nil
	}
	return "", "", control.Invalid("environment", "must be production, preview, staging or sandbox:<name>")
}
