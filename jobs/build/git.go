package build

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"github.com/pierhq/pier/jobs"
	"io"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// refPattern accepts branch and tag names and commit SHAs, and nothing git
// could read as an option or a refspec.
var refPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}$`)

var shaPattern = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// authHeader is the http.extraHeader value carrying token, the form GitHub
// Actions uses: Basic base64("x-access-token:TOKEN").
func authHeader(token string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
}

// logSecrets are every string of req the build log must never show: the
// git token (and its encodings), a password in the repository URL, and the
// value of every build-scoped variable (a build that echoes one gets
// "***"). Values shorter than 4 bytes are left alone: masking "1" or "on"
// everywhere would garble the log and protect nothing.
func logSecrets(req jobs.BuildRequest) []string {
	s := append(tokenSecrets(req.GitToken), urlSecrets(req.RepoURL)...)
	for _, v := range req.Env {
		if len(v) >= 4 {
			s = append(s, v)
		}
	}
	return s
}

// tokenSecrets are the strings the build log must never show: the token
// in every form it travels in.
func tokenSecrets(token string) []string {
	if token == "" {
		return nil
	}
	return []string{
		token,
		base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token)),
		url.QueryEscape(token),
	}
}

// urlSecrets is the password of a repository URL with credentials in it.
func urlSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return nil
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return append(tokenSecrets(p), u.User.String())
	}
	return nil
}

// checkRepo validates a repository URL and returns the form safe to log.
func checkRepo(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return nil, fmt.Errorf("invalid repository URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("repository URL must start with https:// (or http://)")
	}
	if u.Host == "" || strings.HasPrefix(u.Host, "-") {
		return nil, fmt.Errorf("invalid repository URL: no host")
	}
	if strings.ContainsAny(raw, " \t\r\n\x00") {
		return nil, fmt.Errorf("invalid repository URL")
	}
	return u, nil
}

func checkRef(ref string) error {
	if !refPattern.MatchString(ref) || strings.Contains(ref, "..") || strings.Contains(ref, "@{") ||
		strings.HasSuffix(ref, ".lock") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") {
		return fmt.Errorf("invalid git ref %q", ref)
	}
	return nil
}

// gitEnv is the whole environment of the git commands: no user or system
// configuration, no prompts, and the token (if any) as an extra HTTP
// header scoped to the repository's origin, passed through
// GIT_CONFIG_COUNT so it is never in argv, the URL or .git/config.
func (b *builder) gitEnv(repo *url.URL) []string {
	env := append(b.baseEnv(),
		"LC_ALL=C",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=",
		"SSH_ASKPASS=",
		"GCM_INTERACTIVE=never",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
	)
	if b.req.GitToken != "" {
		origin := repo.Scheme + "://" + repo.Host + "/"
		env = append(env,
			"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http."+origin+".extraHeader",
			"GIT_CONFIG_VALUE_0="+authHeader(b.req.GitToken),
		)
	}
	return env
}

// git runs one git command (not sandboxed: it needs the network and only
// writes the checkout), streaming its output to the build log and
// returning stdout and stderr.
func (b *builder) git(ctx context.Context, env []string, stream bool, args ...string) (string, string, error) {
	cmd := exec.Command(b.cfg.Git, args...)
	cmd.Dir = b.dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	var w io.Writer = &stderr
	if stream {
		w = io.MultiWriter(&stderr, b.log)
	}
	err := run(ctx, cmd, &stdout, w)
	return stdout.String(), stderr.String(), err
}

// clone fetches exactly req.Ref (a commit SHA, branch or tag) at depth 1
// into b.src and checks it out. It returns the commit SHA.
func (b *builder) clone(ctx context.Context) (string, error) {
	repo, err := checkRepo(b.req.RepoURL)
	if err != nil {
		return "", public(err.Error(), err)
	}
	ref := b.req.Ref
	if ref == "" {
		ref = "HEAD"
	}
	if err := checkRef(ref); err != nil {
		return "", public(err.Error(), err)
	}
	safe := *repo
	safe.User = nil
	b.log.Printf("==> Cloning %s at %s", safe.String(), ref)
	env := b.gitEnv(repo)

	if _, stderr, err := b.git(ctx, env, false, "-c", "init.defaultBranch=pier", "init", "-q", b.src); err != nil {
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		return "", public("clone failed: could not run git", fmt.Errorf("git init: %w: %s", err, strings.TrimSpace(stderr)))
	}
	_, stderr, err := b.git(ctx, env, true, "-C", b.src,
		"-c", "credential.helper=", "-c", "protocol.version=2",
		"fetch", "--depth=1", "--no-tags", "--no-recurse-submodules", "--", b.req.RepoURL, ref)
	if err != nil {
		return "", cloneError(ctx, err, stderr, ref)
	}
	if _, stderr, err := b.git(ctx, env, true, "-C", b.src, "-c", "advice.detachedHead=false",
		"checkout", "-q", "FETCH_HEAD"); err != nil {
		return "", cloneError(ctx, err, stderr, ref)
	}
	out, stderr, err := b.git(ctx, env, false, "-C", b.src, "rev-parse", "HEAD")
	if err != nil {
		return "", cloneError(ctx, err, stderr, ref)
	}
	sha := strings.TrimSpace(out)
	if !shaPattern.MatchString(sha) {
		return "", fmt.Errorf("git rev-parse HEAD: unexpected output %q", sha)
	}
	if shaPattern.MatchString(strings.ToLower(ref)) && !strings.EqualFold(ref, sha) {
		return "", public("clone failed: the checked-out commit is not the requested one",
			fmt.Errorf("asked for %s, got %s", ref, sha))
	}
	return sha, nil
}

// cloneError turns a failed git command into a user-safe reason; git's own
// output is already in the build log.
func cloneError(ctx context.Context, err error, stderr, ref string) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	s := strings.ToLower(stderr)
	msg := "clone failed: " + exitText(err)
	switch {
	case strings.Contains(s, "could not read username"), strings.Contains(s, "authentication failed"),
		strings.Contains(s, "error: 401"), strings.Contains(s, "error: 403"), strings.Contains(s, "returned error: 403"):
		msg = "clone failed: authentication failed (check the repository access token)"
	case strings.Contains(s, "couldn't find remote ref"), strings.Contains(s, "not our ref"),
		strings.Contains(s, "unadvertised object"), strings.Contains(s, "no such remote ref"):
		msg = "clone failed: ref " + strconv.Quote(ref) + " not found in the repository"
	case strings.Contains(s, "not found"), strings.Contains(s, "error: 404"):
		msg = "clone failed: repository not found"
	case strings.Contains(s, "could not resolve host"), strings.Contains(s, "failed to connect"),
		strings.Contains(s, "connection refused"), strings.Contains(s, "connection timed out"):
		msg = "clone failed: could not reach the git server"
	}
	return public(msg, fmt.Errorf("git: %w: %s", err, strings.TrimSpace(stderr)))
}

// exitText is the user-safe form of a process error ("exit status 1").
func exitText(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ProcessState.String()
	}
	return "could not run git"
}
