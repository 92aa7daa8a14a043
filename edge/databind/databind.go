// Package databind holds the bindings of server code to control's
// services: env.DATA, the per-project data store, and env.QUEUE (queue.go): each call goes to control's API (POST /v1/edge/data) with
// the edge's telemetry token, also in `pier dev` (same process, same
// path). Control resolves the deployment to its project and stage, so
// code only ever reaches its own project's data of its own stage.
//
// The JavaScript API (every method returns a promise):
//
//	get(key)                          → the value, or null
//	get(key, {meta: true})            → {key, value, labels, expires_at, updated_at}, or null
//	set(key, value, {labels, ttl})    → {key, labels, expires_at, updated_at}; ttl in seconds
//	delete(key)                       → true if the key existed
//	list("user:*" | {prefix, label, after, limit})
//	                                  → {items: [{key, value, labels, expires_at, updated_at}], cursor}
package databind

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pierhq/pier/edge"
)

// Client calls control's data API for the edges of one process.
type Client struct {
	url   atomic.Pointer[string]
	token string
	http  *http.Client
}

// New returns a client of control at url (may be set later with SetURL)
// authenticating with token. hc nil: a client with a 15s timeout.
func New(url, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	c := &Client{token: token, http: hc}
	c.SetURL(url)
	return c
}

// SetURL points the client at control's API (its base URL).
func (c *Client) SetURL(url string) { c.url.Store(&url) }

// For returns the binding of one deployment's code.
func (c *Client) For(deploymentID string) *Binding { return &Binding{c: c, deployment: deploymentID} }

// Binding is env.DATA of one deployment; it satisfies isolate.Binding.
type Binding struct {
	c          *Client
	deployment string
}

// Methods lists env.DATA's methods.
func (b *Binding) Methods() []string { return []string{"get", "set", "delete", "list"} }

// errUser is an error whose text the calling code may see.
type errUser string

func (e errUser) Error() string { return string(e) }

// Call runs one method; args is the JSON array of the JavaScript arguments.
func (b *Binding) Call(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error) {
	var a []json.RawMessage
	if err := json.Unmarshal(args, &a); err != nil {
		return nil, errUser("invalid arguments")
	}
	arg := func(i int) json.RawMessage {
		if i < len(a) && string(a[i]) != "null" {
			return a[i]
		}
		return nil
	}
	str := func(i int, what string) (string, error) {
		var s string
		if arg(i) == nil || json.Unmarshal(arg(i), &s) != nil {
			return "", errUser(what + " must be a string")
		}
		return s, nil
	}
	call := edge.DataCall{DeploymentID: b.deployment, Method: method}
	var err error
	switch method {
	case edge.DataGet, edge.DataDelete:
		if call.Key, err = str(0, "the key"); err != nil {
			return nil, err
		}
	case edge.DataSet:
		if call.Key, err = str(0, "the key"); err != nil {
			return nil, err
		}
		if len(a) < 2 {
			return nil, errUser("a value is required: set(key, value, {labels, ttl})")
		}
		call.Value = a[1]
		if len(call.Value) > edge.MaxDataValueBytes {
			return nil, errUser(fmt.Sprintf("value: %d bytes is larger than the limit of %d bytes (as JSON)", len(call.Value), edge.MaxDataValueBytes))
		}
		if o := arg(2); o != nil {
			var opts struct {
				Labels []string `json:"labels"`
				TTL    float64  `json:"ttl"`
			}
			if err := json.Unmarshal(o, &opts); err != nil {
				return nil, errUser("options must be {labels: [strings], ttl: seconds}")
			}
			call.Labels, call.TTL = opts.Labels, opts.TTL
		}
	case edge.DataList:
		if p := arg(0); p != nil {
			var pattern string
			if json.Unmarshal(p, &pattern) == nil {
				base, _ := strings.CutSuffix(pattern, "*")
				if strings.Contains(base, "*") {
					return nil, errUser(`only a trailing "*" is a wildcard, as in list("user:*")`)
				}
				call.Prefix = base
			} else {
				var q struct {
					Prefix string `json:"prefix"`
					Label  string `json:"label"`
					After  string `json:"after"`
					Limit  int    `json:"limit"`
				}
				if err := json.Unmarshal(p, &q); err != nil {
					return nil, errUser(`list takes a pattern ("user:*") or {prefix, label, after, limit}`)
				}
				call.Prefix, call.Label, call.After, call.Limit = q.Prefix, q.Label, q.After, q.Limit
			}
		}
	default:
		return nil, errUser("no such method")
	}
	out, status, err := b.c.post(ctx, "/v1/edge/data", &call, method == edge.DataGet)
	if err != nil {
		return nil, err
	}
	switch {
	case method == edge.DataGet && status == http.StatusNotFound:
		return json.RawMessage("null"), nil
	case method == edge.DataGet:
		var meta struct {
			Meta bool `json:"meta"`
		}
		if o := arg(1); o != nil {
			_ = json.Unmarshal(o, &meta)
		}
		if meta.Meta {
			return out, nil
		}
		var it edge.DataItem
		if err := json.Unmarshal(out, &it); err != nil {
			return nil, errUser("the data store answered something unexpected")
		}
		return it.Value, nil
	case method == edge.DataSet:
		var it edge.DataItem
		if err := json.Unmarshal(out, &it); err != nil {
			return nil, errUser("the data store answered something unexpected")
		}
		it.Value = nil
		return json.Marshal(struct {
			Key       string     `json:"key"`
			Labels    []string   `json:"labels"`
			ExpiresAt *time.Time `json:"expires_at"`
			UpdatedAt time.Time  `json:"updated_at"`
		}{it.Key, it.Labels, it.ExpiresAt, it.UpdatedAt})
	}
	return out, nil
}

// post sends a call to control; a non-2xx answer is an errUser with
// control's message (4xx) or a generic one, except, with missingOK, a
// missing key's 404, returned as a status.
func (c *Client) post(ctx context.Context, path string, call any, missingOK bool) (json.RawMessage, int, error) {
	base := *c.url.Load()
	if base == "" {
		return nil, 0, errUser("the data store is not configured on this edge (edge.control_url)")
	}
	body, err := json.Marshal(call)
	if err != nil {
		return nil, 0, errUser("invalid arguments")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, errUser("the data store is unavailable")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, errUser("canceled")
		}
		return nil, 0, errUser("the data store is unavailable")
	}
	defer res.Body.Close()
	out, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, 0, errUser("the data store is unavailable")
	}
	switch {
	case res.StatusCode/100 == 2:
		return out, res.StatusCode, nil
	case res.StatusCode == http.StatusNotFound && missingOK:
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.Unmarshal(out, &e)
		if strings.HasPrefix(e.Error.Message, "key ") {
			return nil, res.StatusCode, nil
		}
	}
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if res.StatusCode/100 == 4 && res.StatusCode != http.StatusUnauthorized && json.Unmarshal(out, &e) == nil && e.Error.Message != "" {
		return nil, res.StatusCode, errUser(e.Error.Message)
	}
	return nil, res.StatusCode, errUser(fmt.Sprintf("the data store is unavailable (status %d)", res.StatusCode))
}
