package coord

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Key prefixes; see the package comment for the layout.
const (
	prefixEdges       = "pier/edges/"
	prefixWanted      = "pier/wanted/"
	prefixDeployments = "pier/deployments/"
	prefixProjects    = "pier/projects/"
	prefixLocks       = "pier/locks/project/"
)

func edgeKey(edgeID string) string           { return prefixEdges + edgeID }
func wantedKey(deploymentID string) string   { return prefixWanted + deploymentID }
func readyPrefix(deploymentID string) string { return prefixDeployments + deploymentID + "/ready/" }
func readyKey(deploymentID, edgeID string) string {
	return readyPrefix(deploymentID) + edgeID
}
func projectPrefix(projectID string) string { return prefixProjects + projectID + "/" }
func pointerKey(projectID, env string) string {
	return projectPrefix(projectID) + env
}
func lockKey(projectID string) string { return prefixLocks + projectID }

// checkID rejects names that would break the key layout: every ID and
// environment is one non-empty key segment without '/' or control
// characters.
func checkID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("coord: %s is required", kind)
	}
	if len(id) > 256 || strings.ContainsRune(id, '/') || strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return fmt.Errorf("coord: invalid %s %q: want at most 256 characters, no '/' or control characters", kind, id)
	}
	return nil
}

func checkIDs(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if err := checkID(kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// pointerValue is the JSON stored at pier/projects/<project-id>/<env>.
type pointerValue struct {
	ProjectName  string    `json:"project_name"`
	DeploymentID string    `json:"deployment_id"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// readyValue is the JSON stored at an edge's readiness key.
type readyValue struct {
	ReadyAt time.Time `json:"ready_at"`
}

// lockValue is the JSON stored at the project lock while held.
type lockValue struct {
	DeploymentID string    `json:"deployment_id"`
	Since        time.Time `json:"since"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("coord: encode %T: %v", v, err)) // plain structs: cannot fail
	}
	return b
}

// decodePointer parses a pointer pair; ok is false for keys that are not
// pointers or values that do not parse.
func decodePointer(p *Pair) (Pointer, bool) {
	rest, ok := strings.CutPrefix(p.Key, prefixProjects)
	if !ok {
		return Pointer{}, false
	}
	projectID, env, ok := strings.Cut(rest, "/")
	if !ok || projectID == "" || env == "" || strings.Contains(env, "/") {
		return Pointer{}, false
	}
	var v pointerValue
	if err := json.Unmarshal(p.Value, &v); err != nil || v.DeploymentID == "" {
		return Pointer{}, false
	}
	return Pointer{
		ProjectID:    projectID,
		ProjectName:  v.ProjectName,
		Environment:  env,
		DeploymentID: v.DeploymentID,
		UpdatedAt:    v.UpdatedAt,
		ModifyIndex:  p.ModifyIndex,
	}, true
}

func decodePointers(pairs []*Pair) []Pointer {
	out := []Pointer{}
	for _, p := range pairs {
		if ptr, ok := decodePointer(p); ok {
			out = append(out, ptr)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ProjectID != out[j].ProjectID {
			return out[i].ProjectID < out[j].ProjectID
		}
		return out[i].Environment < out[j].Environment
	})
	return out
}

func decodeWanted(pairs []*Pair) []Announcement {
	out := []Announcement{}
	for _, p := range pairs {
		id, ok := strings.CutPrefix(p.Key, prefixWanted)
		if !ok || id == "" || strings.Contains(id, "/") {
			continue
		}
		var a Announcement
		if err := json.Unmarshal(p.Value, &a); err != nil {
			continue
		}
		a.DeploymentID = id
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeploymentID < out[j].DeploymentID })
	return out
}
