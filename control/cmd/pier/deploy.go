package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// runDeploy is `pier deploy [flags] [dir]`: a manual deploy of a local
// directory through the upload API. It hashes every file, asks the server
// which blobs it lacks, sends only those, creates the deployment and waits
// until it is ready.
func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deploy", "Deploy a local directory (already built: the files are served as they are).\n"+
		"Only files the server does not hold yet are uploaded.\n\n  pier deploy --project hello ./dist", stderr)
	project := fs.String("project", "", "project name or ID (required)")
	api := fs.String("api", "http://127.0.0.1:7070", "control API URL (PIER_API)")
	token := fs.String("token", "", "API token (PIER_TOKEN)")
	env := fs.String("environment", "production", "production or preview")
	spa := fs.Bool("spa", false, "serve index.html for paths without an extension that match no file")
	asJSON := fs.Bool("json", false, "print the deployment as JSON (for scripts)")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	dir := "."
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	if *project == "" || *token == "" {
		fmt.Fprintln(stderr, "--project and a token (--token or PIER_TOKEN) are required")
		fs.Usage()
		return errUsage
	}
	c := &apiClient{base: strings.TrimRight(*api, "/"), token: *token}
	progress := stderr
	if *asJSON {
		progress = io.Discard
	}

	files, paths, err := hashTree(dir)
	if err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	fmt.Fprintf(progress, "==> %d files, %s in %s\n", len(files), human(total), dir)
	var check struct {
		Missing []string `json:"missing"`
	}
	if err := c.do(ctx, "POST", "/v1/projects/"+*project+"/uploads", map[string]any{"files": files}, &check); err != nil {
		return err
	}
	for i, sum := range check.Missing {
		f, err := os.Open(paths[sum])
		if err != nil {
			return err
		}
		fmt.Fprintf(progress, "    uploading %d/%d %s\n", i+1, len(check.Missing), relName(dir, paths[sum]))
		err = c.put(ctx, "/v1/projects/"+*project+"/uploads/"+sum, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(progress, "==> uploaded %d new file(s); %d already on the server\n", len(check.Missing), len(files)-len(check.Missing))

	var d map[string]any
	body := map[string]any{"files": files, "spa": *spa, "environment": *env}
	if err := c.do(ctx, "POST", "/v1/projects/"+*project+"/deployments", body, &d); err != nil {
		return err
	}
	id, _ := d["id"].(string)
	fmt.Fprintf(progress, "==> deployment %s created, waiting for it to be ready\n", id)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if err := c.do(ctx, "GET", "/v1/deployments/"+id, nil, &d); err != nil {
			return err
		}
		state, _ := d["state"].(string)
		if state == "ready" || state == "failed" || state == "canceled" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment %s still %s after 5 minutes", id, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if *asJSON {
		out, _ := json.MarshalIndent(d, "", "  ")
		fmt.Fprintln(stdout, string(out))
	} else if d["state"] == "ready" {
		fmt.Fprintf(stdout, "ready: %v\n", d["url"])
	}
	if d["state"] != "ready" {
		return fmt.Errorf("deployment %s is %v: %v", id, d["state"], d["error"])
	}
	return nil
}

type uploadFile struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// hashTree hashes every regular file under dir (skipping .git and
// node_modules), keyed by slash path; paths maps a hash to one file.
func hashTree(dir string) (map[string]uploadFile, map[string]string, error) {
	files := map[string]uploadFile{}
	paths := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && (e.Name() == ".git" || e.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !e.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		sum := hex.EncodeToString(h.Sum(nil))
		files[relName(dir, p)] = uploadFile{SHA256: sum, Size: n}
		paths[sum] = p
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

// apiClient is the CLI's client of the control API.
type apiClient struct {
	base, token string
}

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.send(req, out)
}

func (c *apiClient) put(ctx context.Context, path string, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	return c.send(req, nil)
}

func (c *apiClient) send(req *http.Request, out any) error {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s %s: %s (%s)", req.Method, req.URL.Path, e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}
