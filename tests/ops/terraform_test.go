package ops

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/pierhq/pier/tests/testenv"
)

// Terraform providers cannot be downloaded here, so `terraform init` and
// `validate` cannot run. What is checked instead: every .tf parses;
// formatting is canonical (hclwrite.Format, which terraform fmt uses, and
// `terraform fmt -check` itself when a terraform binary is at hand); each
// module's references resolve (var.*, local.*, module.*.<output>); module
// calls pass only declared variables and every required one; the
// repository files the modules read (agent configs) exist.

// hclFiles lists the files under dir (relative to the repository) whose
// names end in one of exts.
func hclFiles(t *testing.T, dir string, exts ...string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(testenv.RepoRoot(t), dir)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		for _, e := range exts {
			if !d.IsDir() && strings.HasSuffix(p, e) {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHCLFormat: every Terraform file and every agent config or policy is
// parseable HCL in canonical format.
func TestHCLFormat(t *testing.T) {
	files := hclFiles(t, "terraform", ".tf")
	if len(files) == 0 {
		t.Fatal("no .tf files")
	}
	for _, d := range []string{"nomad", "consul", "vault"} {
		files = append(files, hclFiles(t, d, ".hcl")...)
	}
	root := testenv.RepoRoot(t)
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, diags := hclparse.NewParser().ParseHCL(src, rel); diags.HasErrors() {
				t.Fatalf("parse: %v", diags)
			}
			if got := hclwrite.Format(src); !bytes.Equal(got, src) {
				t.Errorf("not canonically formatted (terraform fmt / nomad fmt); want:\n%s", got)
			}
		})
	}
}

// terraformBin is a terraform binary, if one is at hand: PIER_TERRAFORM_BIN,
// the tools cache (tests/tools/build.sh terraform), or $PATH.
func terraformBin() string {
	if p := os.Getenv("PIER_TERRAFORM_BIN"); p != "" {
		return p
	}
	dir := os.Getenv("PIER_TOOLS_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "pier", "tools")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "terraform-v*")); len(m) > 0 {
		for _, p := range m {
			if !strings.HasSuffix(p, ".tmp") && !strings.HasSuffix(p, ".lock") {
				return p
			}
		}
	}
	p, _ := exec.LookPath("terraform")
	return p
}

// TestTerraformFmt runs `terraform fmt -check -recursive` when terraform is
// at hand (it needs no providers); TestHCLFormat covers the same ground
// with hclwrite otherwise.
func TestTerraformFmt(t *testing.T) {
	bin := terraformBin()
	if bin == "" {
		t.Skip("no terraform binary (PIER_TERRAFORM_BIN); TestHCLFormat checks the formatting with hclwrite")
	}
	out, err := runErr([]string{"TF_CLI_CONFIG_FILE=/dev/null", "CHECKPOINT_DISABLE=1"}, bin, "-chdir="+filepath.Join(testenv.RepoRoot(t), "terraform"),
		"fmt", "-check", "-recursive", "-diff")
	if err != nil {
		t.Errorf("terraform fmt -check: %v\n%s", err, out)
	}
}

// tfModule is what one directory of .tf files declares and references.
type tfModule struct {
	dir       string
	variables map[string]bool // name → required (no default)
	locals    map[string]bool
	outputs   map[string]bool
	modules   map[string]*hclsyntax.Block
	refs      []hcl.Traversal
	text      string
}

func loadModule(t *testing.T, dir string) *tfModule {
	t.Helper()
	m := &tfModule{dir: dir, variables: map[string]bool{}, locals: map[string]bool{}, outputs: map[string]bool{},
		modules: map[string]*hclsyntax.Block{}}
	files, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	if len(files) == 0 {
		t.Fatalf("%s: no .tf files", dir)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m.text += string(src)
		file, diags := hclparse.NewParser().ParseHCL(src, f)
		if diags.HasErrors() {
			t.Fatalf("parse %s: %v", f, diags)
		}
		body := file.Body.(*hclsyntax.Body)
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				_, hasDefault := b.Body.Attributes["default"]
				m.variables[b.Labels[0]] = !hasDefault
			case "output":
				m.outputs[b.Labels[0]] = true
			case "module":
				m.modules[b.Labels[0]] = b
			case "locals":
				for name := range b.Body.Attributes {
					m.locals[name] = true
				}
			}
		}
		hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			if e, ok := n.(hclsyntax.Expression); ok {
				if st, ok := e.(*hclsyntax.ScopeTraversalExpr); ok {
					m.refs = append(m.refs, st.Traversal)
				}
			}
			return nil
		})
	}
	tmpls, _ := filepath.Glob(filepath.Join(dir, "templates", "*"))
	for _, f := range tmpls {
		src, _ := os.ReadFile(f)
		m.text += string(src)
	}
	return m
}

func (m *tfModule) attr(tr hcl.Traversal, i int) string {
	if len(tr) <= i {
		return ""
	}
	if a, ok := tr[i].(hcl.TraverseAttr); ok {
		return a.Name
	}
	return ""
}

// TestTerraformModules checks references and module calls across the
// modules and the example.
func TestTerraformModules(t *testing.T) {
	root := testenv.RepoRoot(t)
	dirs := []string{"terraform/modules/control-region", "terraform/modules/edge-region", "terraform/examples/three-regions"}
	mods := map[string]*tfModule{}
	for _, d := range dirs {
		mods[d] = loadModule(t, filepath.Join(root, d))
	}
	repoPath := regexp.MustCompile(`\$\{local\.repo\}/([^"]+)"`)
	for _, d := range dirs {
		m := mods[d]
		t.Run(d, func(t *testing.T) {
			used := map[string]bool{}
			for _, tr := range m.refs {
				name := m.attr(tr, 1)
				switch tr.RootName() {
				case "var":
					used[name] = true
					if _, ok := m.variables[name]; !ok {
						t.Errorf("var.%s is not declared", name)
					}
				case "local":
					if !m.locals[name] {
						t.Errorf("local.%s is not defined", name)
					}
				case "module":
					call := m.modules[name]
					if call == nil {
						t.Errorf("module.%s is not declared", name)
						continue
					}
					if out := m.attr(tr, 2); out != "" {
						if callee := mods[calleeDir(t, d, call)]; callee != nil && !callee.outputs[out] {
							t.Errorf("module.%s.%s: the module has no such output", name, out)
						}
					}
				}
			}
			for v := range m.variables {
				if !used[v] {
					t.Errorf("variable %q is declared but never used", v)
				}
			}
			// Calls pass declared variables, and every required one.
			for name, call := range m.modules {
				callee := mods[calleeDir(t, d, call)]
				if callee == nil {
					t.Errorf("module %s: source is not one of %v", name, dirs)
					continue
				}
				passed := map[string]bool{}
				for a := range call.Body.Attributes {
					switch a {
					case "source", "providers", "count", "for_each", "depends_on", "version":
						continue
					}
					passed[a] = true
					if _, ok := callee.variables[a]; !ok {
						t.Errorf("module %s passes %s, which %s does not declare", name, a, callee.dir)
					}
				}
				var missing []string
				for v, required := range callee.variables {
					if required && !passed[v] {
						missing = append(missing, v)
					}
				}
				sort.Strings(missing)
				if len(missing) > 0 {
					t.Errorf("module %s lacks required variables %v", name, missing)
				}
			}
			// The repository files the module reads exist.
			for _, mm := range repoPath.FindAllStringSubmatch(m.text, -1) {
				pattern := regexp.MustCompile(`\$\{[^}]*\}`).ReplaceAllString(mm[1], "*")
				if got, _ := filepath.Glob(filepath.Join(root, pattern)); len(got) == 0 {
					t.Errorf("reads %s, which matches no file of the repository", mm[1])
				}
			}
		})
	}
	// Every region the example wires has its Nomad overlay.
	for _, f := range []string{"syd-server", "syd-control", "syd-builds", "syd-edge", "mel-edge", "sgp-edge"} {
		if _, err := os.Stat(filepath.Join(root, "nomad", "regions", f+".hcl")); err != nil {
			t.Errorf("nomad/regions/%s.hcl: %v", f, err)
		}
	}
}

// calleeDir resolves a module call's local source against the caller's
// directory, relative to the repository.
func calleeDir(t *testing.T, callerDir string, call *hclsyntax.Block) string {
	t.Helper()
	a := call.Body.Attributes["source"]
	if a == nil {
		return ""
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return ""
	}
	return filepath.ToSlash(filepath.Clean(filepath.Join(callerDir, v.AsString())))
}

// TestShellcheck: the Vagrant provisioning script and the build nodes'
// firewall script are shellcheck-clean.
func TestShellcheck(t *testing.T) {
	bin, err := exec.LookPath("shellcheck")
	if err != nil {
		testenv.Unavailable(t, "shellcheck is not installed (apt-get install shellcheck)")
	}
	root := testenv.RepoRoot(t)
	for _, f := range []string{"nomad/vagrant/provision.sh", "nomad/builder-firewall.sh"} {
		f = filepath.Clean(f)
		t.Run(f, func(t *testing.T) {
			out, err := runErr(nil, bin, "--severity=style", "--external-sources", filepath.Join(root, f))
			if err != nil {
				t.Errorf("shellcheck %s: %v\n%s", f, err, out)
			}
		})
	}
}
