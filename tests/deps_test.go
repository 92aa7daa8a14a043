// Package tests holds repository-wide checks. deps_test enforces the import
// rules of docs/architecture.md with `go list`, so the package tree stays
// what it claims to be.
package tests

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/pierhq/pier/tests/testenv"
)

const mod = "github.com/pierhq/pier"

// pkgs maps each package of the module to its direct imports.
func pkgs(t *testing.T) map[string][]string {
	t.Helper()
	run := func(format string) map[string][]string {
		cmd := exec.Command("go", "list", "-f", format, "./...")
		cmd.Dir = testenv.RepoRoot(t)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		m := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			m[f[0]] = f[1:]
		}
		return m
	}
	return run(`{{.ImportPath}} {{join .Imports " "}}`)
}

func rel(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, mod), "/") }

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func tree(p string) string { return strings.SplitN(p, "/", 2)[0] }

// TestImportRules: the rules of docs/architecture.md.
func TestImportRules(t *testing.T) {
	direct := pkgs(t)

	// Each heavy dependency has exactly one home: only the home imports it,
	// so every path to it goes through the home (edge/edged reaches v8go
	// only through edge/isolate, by design).
	homes := map[string][]string{
		"github.com/gin-gonic/gin":        {"control/api"},
		"github.com/jackc/pgx/v5":         {"control/store/pgstore"},
		"modernc.org/sqlite":              {"control/store/sqlitestore"},
		"github.com/hashicorp/raft":       {"edge/coord/raftkv"},
		"github.com/hashicorp/consul/api": {"edge/coord/consulkv"},
		"github.com/hashicorp/nomad/api":  {"control/dispatch/nomaddispatch"},
		"github.com/hashicorp/vault/api":  {"control/secrets/vaulttransit"},
		"github.com/aws/aws-sdk-go-v2":    {"edge/blob/s3blob"},
		"github.com/tommie/v8go":          {"edge/isolate"},
		"rogchap.com/v8go":                {"edge/isolate"},
		"github.com/evanw/esbuild":        {"edge/isolate"},
		"github.com/google/go-github":     {"control/github/ghstatus"},

		// HTTPS and custom domains.
		"github.com/caddyserver/certmagic": {"edge/certs"},
		"go.uber.org/zap":                  {"edge/certs"},
		"github.com/miekg/dns":             {"control/domains"},
	}
	composition := func(p string) bool { return p == "control/cmd/pier" || under(p, "tests") }

	for full, imports := range direct {
		p := rel(full)
		if composition(p) {
			continue
		}
		for _, imp := range imports {
			for dep, allowed := range homes {
				if !under(imp, dep) {
					continue
				}
				ok := false
				for _, a := range allowed {
					ok = ok || under(p, a) || strings.HasSuffix(p, "test") // conformance suites may drive an adapter's vendor
				}
				if !ok {
					t.Errorf("%s depends on %s, whose only home is %v", p, dep, allowed)
				}
			}
		}
		for _, full := range imports {
			if !strings.HasPrefix(full, mod) {
				continue
			}
			imp := rel(full)
			switch {
			// Rule 1: the three leaf packages import nothing of the platform
			// (jobs may import edge for the manifest).
			case p == "control" || p == "edge" || (p == "jobs" && imp != "edge"):
				t.Errorf("leaf package %s imports %s", p, imp)
			// Rule 3: only the composition root and tests cross trees; the
			// leaf packages are shared vocabulary.
			case tree(imp) != tree(p) && imp != "control" && imp != "edge" && imp != "jobs":
				t.Errorf("%s (tree %s) imports %s (tree %s): only control/cmd/pier and tests/ cross trees", p, tree(p), imp, tree(imp))
			// Domain logic never imports an adapter.
			case (under(p, "control/deploy") || under(p, "control/api") || under(p, "control/controld")) &&
				(under(imp, "control/store") || under(imp, "control/dispatch") || under(imp, "control/secrets")):
				t.Errorf("domain package %s imports adapter %s", p, imp)
			// The edge role reaches backends only through its own interfaces.
			case under(p, "edge/edged") && (under(imp, "edge/coord/") || under(imp, "edge/blob/")):
				t.Errorf("edge/edged imports adapter %s", imp)
			}
		}
	}
}
