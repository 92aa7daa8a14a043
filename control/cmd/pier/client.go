package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// apiClient is the CLI's client of the control API.
type apiClient struct {
	base, token string
}

// apiError is an error answer of the API, with a hint of what to do about
// it where the CLI knows one.
type apiError struct {
	Status  int
	Code    string
	Message string
	Method  string
	Path    string
}

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	switch {
	case e.Status == http.StatusUnauthorized:
		return fmt.Sprintf("the API refused the token (%s): run `pier login` (or set PIER_TOKEN)", msg)
	case e.Status == http.StatusForbidden:
		return fmt.Sprintf("%s: ask an admin for a token with the admin scope", msg)
	case e.Status == http.StatusNotFound && strings.HasPrefix(msg, "project "):
		return msg + ": run `pier ls` to see the projects, or `pier init` to create one"
	case e.Status == http.StatusNotFound && strings.HasPrefix(msg, "deployment "):
		return msg + ": run `pier ls <project>` to see its deployments"
	case e.Code == "":
		return fmt.Sprintf("%s %s: %s", e.Method, e.Path, msg)
	}
	return msg
}

// isNotFound reports whether err is an API 404.
func isNotFound(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
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

// text GETs a text/plain answer (build logs) and the response headers.
func (c *apiClient) text(ctx context.Context, path string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, nil, err
	}
	var raw []byte
	var hdr http.Header
	err = c.roundTrip(req, func(resp *http.Response) error {
		hdr = resp.Header
		raw, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		return err
	})
	return raw, hdr, err
}

func (c *apiClient) send(req *http.Request, out any) error {
	return c.roundTrip(req, func(resp *http.Response) error {
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return err
		}
		if out != nil && len(raw) > 0 {
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", req.Method, req.URL.Path, err)
			}
		}
		return nil
	})
}

// roundTrip sends req with the token and hands a 2xx answer to ok; any
// other answer becomes an *apiError.
func (c *apiClient) roundTrip(req *http.Request, ok func(*http.Response) error) error {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("cannot reach the API at %s (is it running? set --api, PIER_API or run `pier login`): %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &apiError{Status: resp.StatusCode, Method: req.Method, Path: req.URL.Path}
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &body) == nil {
			e.Code, e.Message = body.Error.Code, body.Error.Message
		}
		return e
	}
	return ok(resp)
}
