package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Webhook headers GitHub sends with every delivery.
const (
	HeaderEvent     = "X-GitHub-Event"
	HeaderDelivery  = "X-GitHub-Delivery"
	HeaderSignature = "X-Hub-Signature-256"
)

// MaxPayload is the largest delivery GitHub sends (25 MB); larger bodies
// are refused before they are read whole.
const MaxPayload = 25 << 20

// ErrSignature: the delivery is unsigned, or not signed with the secret.
var ErrSignature = errors.New("webhook signature does not match")

// Sign returns the X-Hub-Signature-256 value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks an X-Hub-Signature-256 header value against body, in
// constant time. Only sha256 signatures are accepted (never the legacy
// sha1 X-Hub-Signature), and an empty secret never verifies.
func Verify(secret, body []byte, signature string) error {
	hexsum, ok := strings.CutPrefix(signature, "sha256=")
	if !ok || len(secret) == 0 {
		return ErrSignature
	}
	got, err := hex.DecodeString(hexsum)
	if err != nil || len(got) != sha256.Size {
		return ErrSignature
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return ErrSignature
	}
	return nil
}

// Event types Pier acts on.
const (
	EventPing        = "ping"
	EventPush        = "push"
	EventPullRequest = "pull_request"
)

// Event is a delivery reduced to what Pier needs.
type Event struct {
	Type string // EventPing, EventPush, EventPullRequest, or another (ignored)
	Repo string // the repository the webhook is on: "owner/name", lowercase

	// Push: Branch is the pushed branch ("" for tags), SHA the new head,
	// Deleted whether the branch was deleted. Pull request: the head branch
	// and commit.
	Branch  string
	SHA     string
	Deleted bool

	// Pull request.
	Action string // "opened", "synchronize", "reopened", "closed", ...
	Number int
	Fork   bool // the head is in another repository (a fork)
}

// Parse reads a delivery of the given X-GitHub-Event type. Types Pier does
// not act on parse to an Event with only Type and Repo set.
func Parse(eventType string, body []byte) (*Event, error) {
	ev := &Event{Type: eventType}
	switch eventType {
	case EventPing, EventPush, EventPullRequest:
	default:
		ev.Repo = payloadRepo(body)
		return ev, nil
	}
	// Only the fields Pier acts on, in GitHub's documented payload shapes.
	type repo struct {
		FullName string `json:"full_name"`
	}
	var p struct {
		Repository  repo   `json:"repository"`
		Ref         string `json:"ref"`
		After       string `json:"after"`
		Deleted     bool   `json:"deleted"`
		Action      string `json:"action"`
		Number      int    `json:"number"`
		PullRequest *struct {
			Number int `json:"number"`
			Head   struct {
				Ref  string `json:"ref"`
				SHA  string `json:"sha"`
				Repo *repo  `json:"repo"`
			} `json:"head"`
			Base struct {
				Repo *repo `json:"repo"`
			} `json:"base"`
		} `json:"pull_request"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("parse %s event: %w", eventType, err)
	}
	ev.Repo = strings.ToLower(p.Repository.FullName)
	switch eventType {
	case EventPush:
		ev.Branch, _ = strings.CutPrefix(p.Ref, "refs/heads/")
		if ev.Branch == p.Ref {
			ev.Branch = "" // a tag or another ref
		}
		ev.SHA = p.After
		ev.Deleted = p.Deleted
	case EventPullRequest:
		pr := p.PullRequest
		if pr == nil {
			return nil, fmt.Errorf("parse %s event: no pull_request", eventType)
		}
		ev.Action = p.Action
		ev.Number = p.Number
		if ev.Number == 0 {
			ev.Number = pr.Number
		}
		ev.Branch = pr.Head.Ref
		ev.SHA = pr.Head.SHA
		// A deleted fork has no head repository: treat it as a fork.
		ev.Fork = pr.Head.Repo == nil || pr.Base.Repo == nil || !strings.EqualFold(pr.Head.Repo.FullName, pr.Base.Repo.FullName)
	}
	if ev.Repo == "" {
		return nil, fmt.Errorf("parse %s event: no repository", eventType)
	}
	return ev, nil
}

// PayloadRepo reads the repository ("owner/name", lowercase) of any
// delivery, or "" when it has none. It is for finding the project whose
// secret verifies the delivery: nothing else in an unverified body is
// trusted.
func PayloadRepo(body []byte) string { return payloadRepo(body) }

// payloadRepo reads the "repository" of any delivery.
func payloadRepo(body []byte) string {
	var p struct {
		Repository struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	return strings.ToLower(p.Repository.FullName)
}

// RepoFromURL returns "owner/name" (lowercase) for a github.com repository
// URL ("https://github.com/Acme/www.git"), or "" for any other URL.
func RepoFromURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Hostname(), "github.com") {
		return ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return ""
	}
	name := strings.TrimSuffix(parts[1], ".git")
	if name == "" {
		return ""
	}
	return strings.ToLower(parts[0] + "/" + name)
}

// ValidRepo reports whether s looks like "owner/name".
func ValidRepo(s string) bool {
	owner, name, ok := strings.Cut(s, "/")
	return ok && validPart(owner, 39) && validPart(name, 100)
}

func validPart(s string, max int) bool {
	if s == "" || len(s) > max || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
