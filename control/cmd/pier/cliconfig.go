package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pierhq/pier/jobs/build"
)

// defaultAPI is where the CLI looks for control when nothing says
// otherwise: `pier dev`'s default address.
const defaultAPI = "http://127.0.0.1:7070"

// login is what `pier login` saves: <user config dir>/pier/config.json,
// mode 0600.
type login struct {
	API   string `json:"api"`
	Token string `json:"token"`
}

func loginPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the user config directory (set XDG_CONFIG_HOME): %w", err)
	}
	return filepath.Join(dir, "pier", "config.json"), nil
}

// loadLogin returns the saved login; none saved is a zero login.
func loadLogin() (login, string, error) {
	var l login
	path, err := loginPath()
	if err != nil {
		return l, "", err
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, path, nil
	}
	if err != nil {
		return l, path, err
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return l, path, fmt.Errorf("%s is not valid JSON (delete it and run `pier login`): %w", path, err)
	}
	return l, path, nil
}

func saveLogin(l login) (string, error) {
	path, err := loginPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	raw, _ := json.MarshalIndent(l, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // an older file's mode
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// conn is the --api and --token flags every command that calls the API
// takes. Precedence: flag, then PIER_API / PIER_TOKEN, then the saved
// login, then (API only) pier dev's default address.
type conn struct {
	api, token *string
}

func addConn(fs *flag.FlagSet) conn {
	return conn{
		api:   fs.String("api", "", "control API URL (PIER_API; default: the saved login, else "+defaultAPI+")"),
		token: fs.String("token", "", "API token (PIER_TOKEN; default: the saved login)"),
	}
}

// client resolves the connection; it fails with a hint when there is no
// token at all.
func (c conn) client() (*apiClient, error) {
	api, token := *c.api, *c.token
	if api == "" || token == "" {
		saved, _, err := loadLogin()
		if err != nil {
			return nil, err
		}
		if api == "" {
			api = saved.API
		}
		if token == "" && (saved.API == "" || saved.API == api) {
			token = saved.Token
		}
	}
	if api == "" {
		api = defaultAPI
	}
	if token == "" {
		return nil, errors.New("not logged in: run `pier login` (or set PIER_TOKEN)")
	}
	return &apiClient{base: strings.TrimRight(api, "/"), token: token}, nil
}

// forProject resolves the project (the --project flag, PIER_PROJECT or
// pier.json; see projectName) and the connection, for the commands that
// act on one project.
func (c conn) forProject(flagValue string) (string, *apiClient, error) {
	p, err := projectName(flagValue)
	if err != nil {
		return "", nil, err
	}
	cl, err := c.client()
	if err != nil {
		return "", nil, err
	}
	return p, cl, nil
}

// projectFile is the project's pier.json, the file the builder also reads
// (its "server" and "functions" keys); the CLI owns "project", "framework"
// and "output_dir", and keeps every other key as it is.
type projectFile struct {
	Project   string `json:"project,omitempty"`
	Framework string `json:"framework,omitempty"`
	OutputDir string `json:"output_dir,omitempty"`

	path string         // where it was read from
	raw  map[string]any // every key, for a rewrite that loses nothing
}

// findProjectFile reads pier.json in dir or the nearest parent that has
// one; none is (nil, nil).
func findProjectFile(dir string) (*projectFile, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for {
		p := filepath.Join(abs, build.ConfigFile)
		if _, err := os.Stat(p); err == nil {
			return readProjectFile(p)
		}
		parent := filepath.Dir(abs)
		if parent == abs {
			return nil, nil
		}
		abs = parent
	}
}

func readProjectFile(path string) (*projectFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pf := &projectFile{path: path, raw: map[string]any{}}
	if err := json.Unmarshal(raw, &pf.raw); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", path, err)
	}
	if err := json.Unmarshal(raw, pf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pf, nil
}

func (pf *projectFile) write() error {
	if pf.raw == nil {
		pf.raw = map[string]any{}
	}
	for k, v := range map[string]string{"project": pf.Project, "framework": pf.Framework, "output_dir": pf.OutputDir} {
		if v == "" {
			delete(pf.raw, k)
		} else {
			pf.raw[k] = v
		}
	}
	raw, err := json.MarshalIndent(pf.raw, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(pf.path, append(raw, '\n'), 0o644)
}

// projectName is --project, else pier.json's project.
func projectName(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	pf, err := findProjectFile(".")
	if err != nil {
		return "", err
	}
	if pf == nil || pf.Project == "" {
		return "", errors.New("which project? pass --project NAME (PIER_PROJECT), or run `pier init` here to write pier.json (`pier ls` lists the projects)")
	}
	return pf.Project, nil
}
