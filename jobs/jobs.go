// Package jobs is the build contract between control and the build worker:
// the request control hands to a build (through a Nomad dispatch payload in
// production, a file for the local builder) and the result the worker
// reports back.
//
// It imports only the standard library.
package jobs

import "time"

// BuildRequest is everything one build needs. It is the Nomad dispatch
// payload in production, so it carries no more secrets than the build
// must have.
type BuildRequest struct {
	DeploymentID string `json:"deployment_id"`
	ProjectID    string `json:"project_id"`
	ProjectName  string `json:"project_name"`

	RepoURL  string `json:"repo_url"`
	Ref      string `json:"ref"`                 // a commit SHA, or a branch to resolve
	GitToken string `json:"git_token,omitempty"` // plaintext, only in the request; never logged

	Framework      string `json:"framework,omitempty"` // "" = detect
	InstallCommand string `json:"install_command,omitempty"`
	BuildCommand   string `json:"build_command,omitempty"`
	OutputDir      string `json:"output_dir,omitempty"`

	Env     map[string]string `json:"env,omitempty"` // build-scoped variables
	Timeout time.Duration     `json:"timeout"`       // install + build
}

// BuildResult is what the worker reports when it is done.
type BuildResult struct {
	DeploymentID string        `json:"deployment_id"`
	CommitSHA    string        `json:"commit_sha,omitempty"`
	Framework    string        `json:"framework,omitempty"`
	ManifestKey  string        `json:"manifest_key,omitempty"`
	Files        int           `json:"files,omitempty"`
	Bytes        int64         `json:"bytes,omitempty"`
	Uploaded     int           `json:"uploaded,omitempty"` // blobs that were not in the store yet
	Duration     time.Duration `json:"duration"`
	// Error is empty on success; otherwise a user-safe reason
	// ("install failed: exit status 1", "build timed out after 10m0s").
	Error string `json:"error,omitempty"`
}

// ResultMarker starts the stdout line that carries a build's JSON result
// when the worker runs with `--result -` (as under Nomad), after the build
// log. The worker neutralises any log line of the build's own that starts
// with it, so a build cannot forge its result.
const ResultMarker = "PIER_RESULT "

// OK reports whether the build succeeded.
func (r *BuildResult) OK() bool { return r.Error == "" }
