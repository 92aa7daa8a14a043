package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pierhq/pier/jobs/build"
)

const deployHelp = `Deploy a local directory (already built: the files are served as they are).
Only files the server does not hold yet are uploaded. The project and the
directory default to pier.json's "project" and "output_dir" (see pier init).

Stages (--environment): production (default), staging, preview (with
--branch), or sandbox:<name>, each at its own URL:
  production       <project>.<base-domain>
  staging          staging.<project>.<base-domain>
  preview          <branch-slug>.<project>.<base-domain>
  sandbox:<name>   sandbox-<name>.<project>.<base-domain>

--watch keeps running: every change in the directory is synced (only the
changed files are sent) to a sandbox of your own, sandbox:<user> unless
--environment says otherwise.

  pier deploy ./dist
  pier deploy --project hello --environment staging ./dist
  pier deploy --watch            # live sync to sandbox:<you>`

// runDeploy is `pier deploy [flags] [dir]`: a manual deploy of a local
// directory through the upload API. It hashes every file, asks the server
// which blobs it lacks, sends only those, creates the deployment and waits
// until it is ready.
func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deploy", deployHelp, stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project name or ID (PIER_PROJECT; default: pier.json)")
	env := fs.String("environment", "", "production, staging, preview or sandbox:<name> (default production; sandbox:<user> with --watch)")
	branch := fs.String("branch", "", "a preview's branch: its URL and variables")
	spa := fs.Bool("spa", false, "serve index.html for paths without an extension that match no file")
	asJSON := fs.Bool("json", false, "print the deployment as JSON (for scripts)")
	watch := fs.Bool("watch", false, "keep watching the directory and sync every change")
	interval := fs.Duration("interval", 100*time.Millisecond, "with --watch: how often the directory is scanned")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	c, err := cn.client()
	if err != nil {
		return err
	}
	name, err := projectName(*project)
	if err != nil {
		return err
	}
	dir := "."
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	} else if pf, _ := findProjectFile("."); pf != nil && pf.OutputDir != "" {
		dir = filepath.Join(filepath.Dir(pf.path), pf.OutputDir)
	}
	if *watch && *env == "" {
		*env = "sandbox:" + sandboxName()
	}
	if *env == "" {
		*env = "production"
	}
	if *watch && *env == "production" {
		return errors.New("--watch does not deploy to production: use --environment staging or sandbox:<name>")
	}
	progress := stderr
	if *asJSON {
		progress = io.Discard
	}
	opts := deployOptions{project: name, environment: *env, branch: *branch, spa: *spa, progress: progress,
		poll: 250 * time.Millisecond}
	if !*watch {
		d, err := deployDir(ctx, c, dir, newHashCache(), opts)
		if err != nil {
			return err
		}
		if *asJSON {
			out, _ := json.MarshalIndent(d, "", "  ")
			fmt.Fprintln(stdout, string(out))
			return nil
		}
		fmt.Fprintf(stdout, "ready: %s\n", d.URL)
		if d.PreviewURL != "" {
			fmt.Fprintf(stdout, "live:  %s\n", d.PreviewURL)
		}
		return nil
	}
	opts.poll = 20 * time.Millisecond
	return watchDir(ctx, c, dir, *interval, opts, stdout)
}

// sandboxName is the current user's name as a sandbox name.
func sandboxName() string {
	n := os.Getenv("USER")
	if u, err := user.Current(); err == nil && n == "" {
		n = u.Username
	}
	n = strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(n), "-"), "-")
	if n == "" || len(n) > 30 {
		n = "dev"
	}
	return n
}

type deployOptions struct {
	project, environment, branch string
	spa                          bool
	progress                     io.Writer
	poll                         time.Duration // how often the deployment's state is read
}

// deploymentView is the part of the API's deployment the CLI reads.
type deploymentView struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Environment string `json:"environment"`
	Alias       string `json:"alias,omitempty"`
	Error       string `json:"error,omitempty"`
	URL         string `json:"url,omitempty"`
	PreviewURL  string `json:"preview_url,omitempty"`
	Live        bool   `json:"live"`
	Files       int    `json:"files,omitempty"`
	Bytes       int64  `json:"bytes,omitempty"`
	CreatedAt   string `json:"created_at"`
	Ref         string `json:"ref"`
	Source      string `json:"source,omitempty"`
	raw         map[string]any
}

func (d *deploymentView) UnmarshalJSON(b []byte) error {
	type plain deploymentView
	if err := json.Unmarshal(b, (*plain)(d)); err != nil {
		return err
	}
	return json.Unmarshal(b, &d.raw)
}

func (d *deploymentView) MarshalJSON() ([]byte, error) { return json.Marshal(d.raw) }

// deployDir uploads what the server lacks of dir, creates the deployment
// and waits until it is ready (or failed).
func deployDir(ctx context.Context, c *apiClient, dir string, hc *hashCache, o deployOptions) (*deploymentView, error) {
	files, paths, err := hc.hashTree(dir)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	fmt.Fprintf(o.progress, "==> %d files, %s in %s\n", len(files), human(total), dir)
	var check struct {
		Missing []string `json:"missing"`
	}
	if err := c.do(ctx, "POST", "/v1/projects/"+o.project+"/uploads", map[string]any{"files": files}, &check); err != nil {
		return nil, err
	}
	for i, sum := range check.Missing {
		f, err := os.Open(paths[sum])
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(o.progress, "    uploading %d/%d %s\n", i+1, len(check.Missing), relName(dir, paths[sum]))
		err = c.put(ctx, "/v1/projects/"+o.project+"/uploads/"+sum, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(o.progress, "==> uploaded %d new file(s); %d already on the server\n", len(check.Missing), len(files)-len(check.Missing))

	var d deploymentView
	body := map[string]any{"files": files, "spa": o.spa, "environment": o.environment}
	if o.branch != "" {
		body["branch"] = o.branch
	}
	if err := c.do(ctx, "POST", "/v1/projects/"+o.project+"/deployments", body, &d); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.progress, "==> deployment %s created (%s), waiting for it to be ready\n", d.ID, o.environment)
	return waitReady(ctx, c, d.ID, o.poll, 5*time.Minute)
}

// waitReady polls a deployment until it reaches a final state.
func waitReady(ctx context.Context, c *apiClient, id string, poll, limit time.Duration) (*deploymentView, error) {
	deadline := time.Now().Add(limit)
	for {
		var d deploymentView
		if err := c.do(ctx, "GET", "/v1/deployments/"+id, nil, &d); err != nil {
			return nil, err
		}
		switch d.State {
		case "ready":
			return &d, nil
		case "failed", "canceled":
			return &d, fmt.Errorf("deployment %s is %s: %s", id, d.State, d.Error)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("deployment %s still %s after %s", id, d.State, limit)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

type uploadFile struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// hashCache remembers each file's hash by its size and modification time,
// so a rescan hashes only the files that changed.
type hashCache struct {
	seen map[string]cachedHash
}

type cachedHash struct {
	fileStamp
	sum string
}

func newHashCache() *hashCache { return &hashCache{seen: map[string]cachedHash{}} }

// skipped reports whether a deploy leaves a path out: version control,
// dependencies, and pier.json at the root (the project's config, not
// content).
func skipped(rel string, e fs.DirEntry) bool {
	if e.IsDir() {
		return e.Name() == ".git" || e.Name() == "node_modules"
	}
	return rel == build.ConfigFile
}

// walkDeployable calls fn for every regular file under dir that a deploy
// sends (skipping .git, node_modules and the root pier.json), with its
// slash path relative to dir.
func walkDeployable(dir string, fn func(p, rel string, info fs.FileInfo) error) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := relName(dir, p)
		if skipped(rel, e) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		return fn(p, rel, info)
	})
}

// hashTree hashes every file walkDeployable finds, keyed by slash path;
// paths maps a hash to one file. A file whose size and modification time
// are unchanged since the last call is not read again.
func (hc *hashCache) hashTree(dir string) (map[string]uploadFile, map[string]string, error) {
	files := map[string]uploadFile{}
	paths := map[string]string{}
	err := walkDeployable(dir, func(p, rel string, info fs.FileInfo) error {
		c, ok := hc.seen[p]
		if !ok || c.size != info.Size() || !c.mtime.Equal(info.ModTime()) {
			sum, n, err := hashFile(p)
			if err != nil {
				return err
			}
			c = cachedHash{fileStamp: fileStamp{size: n, mtime: info.ModTime()}, sum: sum}
			hc.seen[p] = c
		}
		files[rel] = uploadFile{SHA256: c.sum, Size: c.size}
		paths[c.sum] = p
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("%s has no files to deploy", dir)
	}
	return files, paths, nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func relName(dir, p string) string {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(rel)
}

func human(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
