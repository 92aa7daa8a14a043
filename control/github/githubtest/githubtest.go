// Package githubtest is a fake GitHub for tests: a REST API server that
// speaks the commit statuses wire format (what control/github's Client
// calls), and webhook deliveries sent the way GitHub sends them (headers,
// HMAC-SHA256 signature), with payloads recorded in testdata from GitHub's
// documented examples.
//
// Test-support package: imported only by tests. Imports: control/github
// (for the signature).
package githubtest

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/control/github"
)

// payloads are recorded deliveries: ping, push (to main),
// pull_request_{opened,synchronize,closed} (a branch of acme/www) and
// pull_request_opened_fork (from mallory-dev/www). Their repository is
// acme/www.
//
//go:embed testdata/*.json
var payloads embed.FS

// Status is one commit status the server received.
type Status struct {
	Owner, Repo, SHA string
	Token            string // the bearer token it came with
	State            string `json:"state"`
	TargetURL        string `json:"target_url"`
	Description      string `json:"description"`
	Context          string `json:"context"`
}

// Server is the fake REST API. Statuses posted with a token in Tokens (any
// token when Tokens is empty) are recorded and answered 201 like GitHub;
// others get GitHub's 401.
type Server struct {
	URL string

	mu       sync.Mutex
	tokens   map[string]bool
	statuses []Status
	nextID   int64
}

// NewServer starts a fake API on 127.0.0.1, accepting the given tokens
// (any, when none are given). It is closed by t.Cleanup.
func NewServer(t testing.TB, tokens ...string) *Server {
	t.Helper()
	s := &Server{tokens: map[string]bool{}, nextID: 20000000000}
	for _, tok := range tokens {
		s.tokens[tok] = true
	}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(ts.Close)
	s.URL = ts.URL + "/"
	return s
}

// Statuses returns every status received so far, oldest first.
func (s *Server) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.statuses...)
}

// StatusesFor returns the statuses received for one commit, oldest first.
func (s *Server) StatusesFor(sha string) []Status {
	var out []Status
	for _, st := range s.Statuses() {
		if st.SHA == sha {
			out = append(out, st)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// POST /repos/{owner}/{repo}/statuses/{sha}
	if r.Method != http.MethodPost || len(parts) != 5 || parts[0] != "repos" || parts[3] != "statuses" {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found",
			"documentation_url": "https://docs.github.com/rest", "status": "404"})
		return
	}
	token := ""
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		token = strings.TrimPrefix(a, "Bearer ")
	} else if strings.HasPrefix(a, "token ") {
		token = strings.TrimPrefix(a, "token ")
	}
	s.mu.Lock()
	known := token != "" && (len(s.tokens) == 0 || s.tokens[token])
	s.mu.Unlock()
	if !known {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials",
			"documentation_url": "https://docs.github.com/rest", "status": "401"})
		return
	}
	var st Status
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Problems parsing JSON"})
		return
	}
	switch st.State {
	case "error", "failure", "pending", "success":
	default:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
			"errors": []map[string]string{{"resource": "Status", "field": "state", "code": "custom",
				"message": "state is not included in the list"}},
			"documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status", "status": "422"})
		return
	}
	if len([]rune(st.Description)) > 140 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
			"errors": []map[string]string{{"resource": "Status", "field": "description", "code": "custom",
				"message": "description is too long (maximum is 140 characters)"}}, "status": "422"})
		return
	}
	st.Owner, st.Repo, st.SHA, st.Token = parts[1], parts[2], parts[4], token
	if st.Context == "" {
		st.Context = "default"
	}
	s.mu.Lock()
	s.statuses = append(s.statuses, st)
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC3339)
	full := st.Owner + "/" + st.Repo
	writeJSON(w, http.StatusCreated, map[string]any{
		"url":         "https://api.github.com/repos/" + full + "/statuses/" + st.SHA,
		"avatar_url":  "https://github.com/images/error/hubot_happy.gif",
		"id":          id,
		"node_id":     "SC_kwDOL8xAx88AAAAE" + strconv.FormatInt(id, 36),
		"state":       st.State,
		"description": st.Description,
		"target_url":  nilIfEmpty(st.TargetURL),
		"context":     st.Context,
		"created_at":  now,
		"updated_at":  now,
		"creator": map[string]any{"login": "pier-bot", "id": 1, "node_id": "MDQ6VXNlcjE=", "type": "Bot",
			"url": "https://api.github.com/users/pier-bot", "site_admin": false},
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-GitHub-Media-Type", "github.v3; format=json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Payload returns the recorded delivery name (e.g. "push",
// "pull_request_opened") with edits applied: each key is a dotted path into
// the JSON ("after", "pull_request.head.sha") whose value is replaced.
func Payload(t testing.TB, name string, edits map[string]any) []byte {
	t.Helper()
	raw, err := payloads.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatalf("githubtest: no payload %q: %v", name, err)
	}
	if len(edits) == 0 {
		return raw
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("githubtest: payload %s: %v", name, err)
	}
	for path, v := range edits {
		keys := strings.Split(path, ".")
		m := doc
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				t.Fatalf("githubtest: payload %s has no object at %q", name, path)
			}
			m = next
		}
		if _, ok := m[keys[len(keys)-1]]; !ok {
			t.Fatalf("githubtest: payload %s has no field %q", name, path)
		}
		m[keys[len(keys)-1]] = v
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Delivery is one webhook delivery, sent as GitHub sends it.
type Delivery struct {
	Event  string // X-GitHub-Event
	ID     string // X-GitHub-Delivery; default a new random GUID
	Body   []byte
	Secret []byte // signs the body; nil: unsigned
}

var (
	deliveryMu sync.Mutex
	deliveryN  int
)

// NewDeliveryID returns a GUID-shaped delivery ID, unique in the process.
func NewDeliveryID() string {
	deliveryMu.Lock()
	defer deliveryMu.Unlock()
	deliveryN++
	return fmt.Sprintf("a7b1c2d4-%04x-11ef-8a3b-%012x", deliveryN%0x10000, time.Now().UnixNano()&0xffffffffffff)
}

// Deliver POSTs d to url with GitHub's headers and returns the status code
// and body.
func Deliver(t testing.TB, url string, d Delivery) (int, string) {
	t.Helper()
	if d.ID == "" {
		d.ID = NewDeliveryID()
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/9f2b3c1")
	req.Header.Set("Accept", "*/*")
	req.Header.Set(github.HeaderEvent, d.Event)
	req.Header.Set(github.HeaderDelivery, d.ID)
	req.Header.Set("X-GitHub-Hook-ID", "481516234")
	req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "repository")
	req.Header.Set("X-GitHub-Hook-Installation-Target-ID", "801234567")
	if d.Secret != nil {
		req.Header.Set(github.HeaderSignature, github.Sign(d.Secret, d.Body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("deliver %s: %v", d.Event, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
