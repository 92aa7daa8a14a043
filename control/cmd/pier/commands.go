package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/jobs/build"
)

// The developer commands: they talk to a running control through its API.

func printJSON(w io.Writer, v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(out))
	return err
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

type whoamiView struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Scope string `json:"scope"`
}

// runLogin is `pier login`: it checks an API URL and a token against the
// API and saves them for the other commands.
func runLogin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("login", "Save the control API's URL and an API token, checked with a call, in\n"+
		"<user config dir>/pier/config.json (mode 0600). Without --token the token is read\n"+
		"from standard input, so it stays out of the shell history. PIER_API and PIER_TOKEN,\n"+
		"and --api/--token on any command, override the saved login.\n\n"+
		"  pier login --api http://127.0.0.1:7070 < <data-dir>/dev-token", stderr)
	api := fs.String("api", "", "control API URL (PIER_API; default "+defaultAPI+")")
	token := fs.String("token", "", "API token (PIER_TOKEN; default: read from standard input)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *api == "" {
		*api = defaultAPI
	}
	if *token == "" {
		fmt.Fprintf(stderr, "API token for %s: ", *api)
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		*token = strings.TrimSpace(line)
		fmt.Fprintln(stderr)
		if *token == "" {
			return errors.New("no token given: pass --token, or paste it (pier dev prints one)")
		}
	}
	c := &apiClient{base: strings.TrimRight(*api, "/"), token: *token}
	var me whoamiView
	if err := c.do(ctx, "GET", "/v1/whoami", nil, &me); err != nil {
		var e *apiError
		if errors.As(err, &e) && e.Status == 401 {
			return errors.New("the API refused this token: check it (pier dev prints its token and keeps it in <data-dir>/dev-token)")
		}
		return err
	}
	path, err := saveLogin(login{API: c.base, Token: *token})
	if err != nil {
		return fmt.Errorf("save the login: %w", err)
	}
	fmt.Fprintf(stdout, "Logged in to %s as %s (%s scope); saved in %s\n", c.base, me.Name, me.Scope, path)
	return nil
}

// runLogout is `pier logout`: it forgets the saved login.
func runLogout(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("logout", "Forget the saved login (the token stays valid on the server).", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	path, err := loginPath()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Fprintln(stdout, "Logged out")
	return nil
}

// runWhoami is `pier whoami`.
func runWhoami(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("whoami", "Show which API and token the CLI uses.", stderr)
	cn := addConn(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := cn.client()
	if err != nil {
		return err
	}
	var me whoamiView
	if err := c.do(ctx, "GET", "/v1/whoami", nil, &me); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, map[string]string{"api": c.base, "id": me.ID, "name": me.Name, "scope": me.Scope})
	}
	fmt.Fprintf(stdout, "%s (%s scope, token %s) at %s\n", me.Name, me.Scope, me.ID, c.base)
	return nil
}

var labelInvalid = regexp.MustCompile(`[^a-z0-9]+`)

// runInit is `pier init [dir]`: it detects the framework like the builder
// does, writes pier.json and creates the project if the API lacks it.
func runInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("init", "Set up the current directory (or dir) as a Pier project: detect the framework\n"+
		"as the builder does, write pier.json (project, framework, output_dir; other keys\n"+
		"are kept) and create the project through the API if it does not exist yet.\n"+
		"The repository defaults to the git remote \"origin\" (http(s) or GitHub SSH);\n"+
		"a project without one is deployed with `pier deploy` only.\n\n"+
		"  pier init\n  pier init --name shop --repo https://github.com/you/shop.git", stderr)
	cn := addConn(fs)
	name := fs.String("name", "", "project name, a DNS label (default: pier.json's, else the directory's name)")
	repo := fs.String("repo", "", "git repository URL (default: the origin remote)")
	branch := fs.String("branch", "", "production branch (default main)")
	asJSON := fs.Bool("json", false, "print the project as JSON")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	dir := "."
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	pf, err := readProjectFile(filepath.Join(abs, build.ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		pf, err = &projectFile{path: filepath.Join(abs, build.ConfigFile)}, nil
	}
	if err != nil {
		return err
	}
	if *name == "" {
		*name = pf.Project
	}
	if *name == "" {
		*name = strings.Trim(labelInvalid.ReplaceAllString(strings.ToLower(filepath.Base(abs)), "-"), "-")
	}
	plan, err := build.Detect(abs)
	switch {
	case errors.Is(err, build.ErrNotDetected):
		fmt.Fprintf(stderr, "==> no framework detected (%v)\n", err)
		plan = build.Plan{Framework: build.FrameworkOther, OutputDir: "."}
	case err != nil:
		return fmt.Errorf("detect the framework: %w", err)
	default:
		fmt.Fprintf(stderr, "==> detected %s (output %s)\n", plan.Framework, plan.OutputDir)
	}
	if *repo == "" {
		*repo = originRemote(ctx, abs)
	}

	c, err := cn.client()
	if err != nil {
		return err
	}
	var p map[string]any
	err = c.do(ctx, "GET", "/v1/projects/"+*name, nil, &p)
	switch {
	case isNotFound(err):
		body := map[string]any{"name": *name, "repo_url": *repo}
		if *branch != "" {
			body["branch"] = *branch
		}
		if err := c.do(ctx, "POST", "/v1/projects", body, &p); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "==> created project %s\n", *name)
	case err != nil:
		return err
	default:
		fmt.Fprintf(stderr, "==> project %s exists; linked\n", *name)
	}
	pf.Project, pf.Framework = *name, plan.Framework
	if plan.OutputDir != "." {
		pf.OutputDir = plan.OutputDir
	}
	if err := pf.write(); err != nil {
		return fmt.Errorf("write %s: %w", pf.path, err)
	}
	fmt.Fprintf(stderr, "==> wrote %s\n", pf.path)
	if *asJSON {
		return printJSON(stdout, p)
	}
	fmt.Fprintf(stdout, "%s: %v\n", *name, p["url"])
	return nil
}

// originRemote is the directory's git origin as an https URL, or "".
func originRemote(ctx context.Context, dir string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "remote", "get-url", "origin").Output()
	if err != nil {
		return ""
	}
	u := strings.TrimSpace(string(out))
	if rest, ok := strings.CutPrefix(u, "git@github.com:"); ok {
		u = "https://github.com/" + rest
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return ""
	}
	return u
}

type projectView struct {
	Name             string `json:"name"`
	URL              string `json:"url"`
	FlatHosts        bool   `json:"flat_hosts,omitempty"`
	RepoURL          string `json:"repo_url"`
	ActiveDeployment string `json:"active_deployment_id"`
	CreatedAt        string `json:"created_at"`
}

// runLs is `pier ls [project]`.
func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ls", "List the projects, or with a project name the project's deployments\n"+
		"(newest first).\n\n  pier ls\n  pier ls hello\n  pier ls --json hello", stderr)
	cn := addConn(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	limit := fs.Int("limit", 20, "deployments to list")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	c, err := cn.client()
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		var raw json.RawMessage
		if err := c.do(ctx, "GET", "/v1/projects", nil, &raw); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, raw)
		}
		var list struct{ Projects []projectView }
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		if len(list.Projects) == 0 {
			fmt.Fprintln(stderr, "no projects yet: run `pier init` in a site's directory")
			return nil
		}
		w := table(stdout)
		fmt.Fprintln(w, "NAME\tURL\tLIVE DEPLOYMENT\tREPOSITORY")
		for _, p := range list.Projects {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.Name, p.URL, dash(p.ActiveDeployment), dash(p.RepoURL))
		}
		return w.Flush()
	}
	var raw json.RawMessage
	if err := c.do(ctx, "GET", fmt.Sprintf("/v1/projects/%s/deployments?limit=%d", fs.Arg(0), *limit), nil, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var list struct{ Deployments []deploymentView }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	if len(list.Deployments) == 0 {
		fmt.Fprintf(stderr, "%s has no deployments yet: run `pier deploy`\n", fs.Arg(0))
		return nil
	}
	w := table(stdout)
	fmt.Fprintln(w, "ID\tSTATE\tSTAGE\tLIVE\tCREATED\tURL")
	for _, d := range list.Deployments {
		live := ""
		if d.Live {
			live = "live"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.State, stage(d), live, ago(d.CreatedAt), dash(d.URL))
	}
	return w.Flush()
}

// stage is how a deployment's target reads: production, staging, the
// sandbox, or the preview's alias.
func stage(d deploymentView) string {
	if d.Alias == "" || d.Environment == d.Alias {
		return d.Environment
	}
	return d.Environment + ":" + d.Alias
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(ts string) string {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return ts
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Format("2006-01-02")
}

// runEnv is `pier env set|list|rm`.
func runEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const help = `Usage: pier env <set|list|rm> [flags]

Manage the project's environment variables. Values are write-only: no
command (and no API call) prints a value back.

  pier env set API_KEY              # the value is read from standard input
  pier env set --scope runtime --target production MODE live
  pier env list [--json]
  pier env rm API_KEY

Run 'pier env <command> -h' for its flags.
`
	if len(args) == 0 {
		fmt.Fprint(stderr, help)
		return errUsage
	}
	switch args[0] {
	case "set":
		return runEnvSet(ctx, args[1:], stdin, stdout, stderr)
	case "list", "ls":
		return runEnvList(ctx, args[1:], stdout, stderr)
	case "rm", "remove", "unset":
		return runEnvRm(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, help)
		return nil
	}
	fmt.Fprintf(stderr, "pier env: unknown command %q\n\n%s", args[0], help)
	return errUsage
}

// listFlag is a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func runEnvSet(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("env set", "Set a variable: pier env set [flags] NAME [VALUE]. Without VALUE (or with -)\n"+
		"the value is read from standard input (one line; all of it with --multiline).\n"+
		"A VALUE that starts with - goes after --: pier env set NAME -- -value", stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project (PIER_PROJECT; default: pier.json)")
	scope := fs.String("scope", "", "build, runtime or both (default both)")
	var targets listFlag
	fs.Var(&targets, "target", "production, preview, staging, sandbox or branch:<name>; repeatable (default production,preview)")
	multi := fs.Bool("multiline", false, "read the whole of standard input as the value")
	if err := parseN(fs, args, 2); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "the variable's NAME is required")
		fs.Usage()
		return errUsage
	}
	name := fs.Arg(0)
	var value string
	if fs.NArg() == 2 && fs.Arg(1) != "-" {
		value = fs.Arg(1)
	} else {
		var raw []byte
		var err error
		if *multi {
			raw, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
		} else {
			var line string
			line, err = bufio.NewReader(stdin).ReadString('\n')
			if errors.Is(err, io.EOF) {
				err = nil
			}
			raw = []byte(strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			return fmt.Errorf("read the value: %w", err)
		}
		value = string(raw)
	}
	p, c, err := cn.forProject(*project)
	if err != nil {
		return err
	}
	body := map[string]any{"value": value}
	if *scope != "" {
		body["scope"] = *scope
	}
	if len(targets) > 0 {
		body["targets"] = []string(targets)
	}
	var v struct {
		Scope   string   `json:"scope"`
		Targets []string `json:"targets"`
	}
	if err := c.do(ctx, "PUT", "/v1/projects/"+p+"/env/"+name, body, &v); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "set %s on %s (scope %s, targets %s); new deployments get it\n", name, p, v.Scope, strings.Join(v.Targets, ","))
	return nil
}

func runEnvList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("env list", "List the project's variables: names, scopes and targets (never values).", stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project (PIER_PROJECT; default: pier.json)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	p, c, err := cn.forProject(*project)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(ctx, "GET", "/v1/projects/"+p+"/env", nil, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var list struct {
		Env []struct {
			Name      string   `json:"name"`
			Scope     string   `json:"scope"`
			Targets   []string `json:"targets"`
			UpdatedAt string   `json:"updated_at"`
		} `json:"env"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	if len(list.Env) == 0 {
		fmt.Fprintf(stderr, "%s has no variables: `pier env set NAME` adds one\n", p)
		return nil
	}
	w := table(stdout)
	fmt.Fprintln(w, "NAME\tSCOPE\tTARGETS\tUPDATED")
	for _, v := range list.Env {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Name, v.Scope, strings.Join(v.Targets, ","), ago(v.UpdatedAt))
	}
	return w.Flush()
}

func runEnvRm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("env rm", "Remove a variable: pier env rm NAME. Deployments made before keep it.", stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project (PIER_PROJECT; default: pier.json)")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "the variable's NAME is required")
		fs.Usage()
		return errUsage
	}
	p, c, err := cn.forProject(*project)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "DELETE", "/v1/projects/"+p+"/env/"+fs.Arg(0), nil, nil); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("%s has no variable %s (`pier env list` shows them)", p, fs.Arg(0))
		}
		return err
	}
	fmt.Fprintf(stdout, "removed %s from %s\n", fs.Arg(0), p)
	return nil
}

type cutoverView struct {
	DeploymentID string  `json:"deployment_id"`
	Previous     string  `json:"previous_deployment_id"`
	TotalMS      float64 `json:"total_ms"`
	Edges        []struct {
		Edge   string  `json:"edge"`
		WaitMS float64 `json:"wait_ms"`
	} `json:"edges"`
}

func printCutover(w io.Writer, verb string, cut cutoverView) {
	fmt.Fprintf(w, "%s: %s is live on %d edge(s) in %.1f ms", verb, cut.DeploymentID, len(cut.Edges), cut.TotalMS)
	if cut.Previous != "" {
		fmt.Fprintf(w, " (was %s)", cut.Previous)
	}
	fmt.Fprintln(w)
}

// runPromote is `pier promote DEPLOYMENT`.
func runPromote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("promote", "Make a ready deployment the project's production deployment, once every\n"+
		"edge holds it: pier promote dpl-...", stderr)
	cn := addConn(fs)
	asJSON := fs.Bool("json", false, "print the cutover as JSON")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "the DEPLOYMENT to promote is required (`pier ls <project>` lists them)")
		fs.Usage()
		return errUsage
	}
	c, err := cn.client()
	if err != nil {
		return err
	}
	var cut cutoverView
	var raw json.RawMessage
	if err := c.do(ctx, "POST", "/v1/deployments/"+fs.Arg(0)+"/promote", map[string]any{}, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	json.Unmarshal(raw, &cut)
	printCutover(stdout, "promoted", cut)
	return nil
}

// runRollback is `pier rollback [DEPLOYMENT]`.
func runRollback(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rollback", "Point production back at an earlier ready deployment: the one given, else the\n"+
		"newest one older than the live one. Nothing is rebuilt.\n\n  pier rollback\n  pier rollback --project hello dpl-...", stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project (PIER_PROJECT; default: pier.json)")
	asJSON := fs.Bool("json", false, "print the cutover as JSON")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	p, c, err := cn.forProject(*project)
	if err != nil {
		return err
	}
	body := map[string]any{}
	if fs.NArg() == 1 {
		body["deployment_id"] = fs.Arg(0)
	}
	var raw json.RawMessage
	if err := c.do(ctx, "POST", "/v1/projects/"+p+"/rollback", body, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var cut cutoverView
	json.Unmarshal(raw, &cut)
	printCutover(stdout, "rolled back", cut)
	return nil
}

// runOpen is `pier open`: the project's URL (or a stage's), opened in a
// browser with --browser.
func runOpen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("open", "Print the project's URL, or a stage's (--environment staging, sandbox:<name>,\n"+
		"preview --branch b), and with --browser open it.", stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project (PIER_PROJECT; default: pier.json)")
	env := fs.String("environment", "production", "production, staging, sandbox:<name> or preview")
	branch := fs.String("branch", "", "with --environment preview: the branch")
	browser := fs.Bool("browser", false, "open the URL with $BROWSER or xdg-open")
	if err := parse(fs, args); err != nil {
		return err
	}
	p, c, err := cn.forProject(*project)
	if err != nil {
		return err
	}
	var pv projectView
	if err := c.do(ctx, "GET", "/v1/projects/"+p, nil, &pv); err != nil {
		return err
	}
	url, err := stageURL(pv.URL, pv.FlatHosts, *env, *branch)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, url)
	if !*browser {
		return nil
	}
	open := os.Getenv("BROWSER")
	if open == "" {
		open = "xdg-open"
	}
	return exec.CommandContext(ctx, open, url).Start()
}

// stageURL is the URL of a stage given the production URL
// (scheme://<project>.<base>[:port]) and the host style (edge.HostNames).
func stageURL(prodURL string, flat bool, env, branch string) (string, error) {
	scheme, host, ok := strings.Cut(prodURL, "://")
	if !ok {
		return "", fmt.Errorf("unexpected project URL %q", prodURL)
	}
	var label string
	switch {
	case env == "production" || env == "":
		return prodURL, nil
	case env == "staging":
		label = "staging"
	case strings.HasPrefix(env, "sandbox:"):
		label = "sandbox-" + strings.TrimPrefix(env, "sandbox:")
	case env == "preview" && branch != "":
		label = deploy.PreviewAlias(branch)
	default:
		return "", fmt.Errorf("--environment %q: want production, staging, sandbox:<name> or preview with --branch", env)
	}
	if flat {
		return scheme + "://" + label + edge.FlatSeparator + host, nil
	}
	return scheme + "://" + label + "." + host, nil
}
