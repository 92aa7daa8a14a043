package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// runLogs is `pier logs`: a deployment's build log, or with --project a
// project's runtime logs (console.* and access records); --follow streams
// either (server-sent events) until the build ends or Ctrl-C.
func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("logs", "Show a deployment's build log, or a project's runtime logs.\n\n"+
		"  pier logs dpl-abc123 --follow          the build log, live until the build ends\n"+
		"  pier logs --project hello --follow     console.* and access records, live\n"+
		"  pier logs --project hello --level error --since 1h --q timeout", stderr)
	cn := addConn(fs)
	follow := fs.Bool("follow", false, "stream new output as it comes")
	asJSON := fs.Bool("json", false, "one JSON object per line (for scripts)")
	project := fs.String("project", "", "runtime logs of this project (name or ID)")
	deployment := fs.String("deployment", "", "runtime logs: only this deployment")
	since := fs.String("since", "", "runtime logs: from this time (RFC 3339) or this long ago (15m)")
	until := fs.String("until", "", "runtime logs: until this time or this long ago")
	level := fs.String("level", "", "runtime logs: only these levels (debug,info,warn,error)")
	text := fs.String("q", "", "runtime logs: only messages containing this text")
	limit := fs.Int("limit", 100, "runtime logs: at most this many (the newest)")
	// Flags may follow the deployment ID.
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	pos := fs.Args()
	if (len(pos) == 1) == (*project != "") {
		fmt.Fprintln(stderr, "give a deployment ID or --project (not both)")
		fs.Usage()
		return errUsage
	}
	c, err := cn.client()
	if err != nil {
		return err
	}
	if *project == "" {
		return buildLogs(ctx, c, pos[0], *follow, *asJSON, stdout)
	}
	q := url.Values{}
	for k, v := range map[string]string{"deployment": *deployment, "since": *since, "until": *until, "level": *level, "q": *text} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", fmt.Sprint(*limit))
	path := "/v1/projects/" + url.PathEscape(*project) + "/logs"
	print := func(raw json.RawMessage) error {
		if *asJSON {
			_, err := fmt.Fprintln(stdout, string(raw))
			return err
		}
		var e struct {
			Time                              time.Time
			Kind, Level, Message, Edge, Start string
			RequestID                         string `json:"request_id"`
			DeploymentID                      string `json:"deployment_id"`
			DurationUS                        int64  `json:"duration_us"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		extra := ""
		if e.Kind == "access" {
			extra = fmt.Sprintf(" (%.1fms", float64(e.DurationUS)/1000)
			if e.Start != "" {
				extra += ", " + e.Start
			}
			extra += ")"
		}
		_, err := fmt.Fprintf(stdout, "%s %-5s %s %s %s%s [%s]\n", e.Time.Local().Format("15:04:05.000"), e.Level,
			e.DeploymentID, e.Edge, e.Message, extra, e.RequestID)
		return err
	}
	if !*follow {
		var out struct {
			Logs []json.RawMessage `json:"logs"`
		}
		if err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		for _, raw := range out.Logs {
			if err := print(raw); err != nil {
				return err
			}
		}
		return nil
	}
	q.Set("follow", "1")
	return c.events(ctx, path+"?"+q.Encode(), func(ev sseEvent) (bool, error) {
		if ev.name == "log" {
			return false, print(json.RawMessage(ev.data))
		}
		return false, nil
	})
}

func buildLogs(ctx context.Context, c *apiClient, id string, follow, asJSON bool, stdout io.Writer) error {
	path := "/v1/deployments/" + url.PathEscape(id) + "/logs"
	if !follow {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("reach the API at %s: %w", c.base, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return c.send(req, &raw) // the same request again, for the error text
		}
		if asJSON {
			b, _ := io.ReadAll(resp.Body)
			out, _ := json.Marshal(map[string]any{"deployment": id, "text": string(b)})
			_, err = fmt.Fprintln(stdout, string(out))
			return err
		}
		_, err = io.Copy(stdout, resp.Body)
		return err
	}
	var final struct {
		State string `json:"state"`
		Error string `json:"error"`
	}
	err := c.events(ctx, path+"?follow=1", func(ev sseEvent) (bool, error) {
		if asJSON {
			fmt.Fprintf(stdout, "{\"event\":%q,\"data\":%s}\n", ev.name, ev.data)
		}
		switch ev.name {
		case "log":
			if !asJSON {
				var chunk struct{ Text string }
				if err := json.Unmarshal([]byte(ev.data), &chunk); err != nil {
					return true, err
				}
				_, err := io.WriteString(stdout, chunk.Text)
				return false, err
			}
		case "end":
			return true, json.Unmarshal([]byte(ev.data), &final)
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if final.State == "failed" || final.State == "canceled" {
		return fmt.Errorf("deployment %s is %s: %s", id, final.State, final.Error)
	}
	return nil
}

type sseEvent struct{ id, name, data string }

// events reads a server-sent event stream, calling fn for each event until
// fn says stop, the stream ends or ctx does. A dropped stream is resumed
// with Last-Event-ID.
func (c *apiClient) events(ctx context.Context, path string, fn func(sseEvent) (stop bool, err error)) error {
	lastID := ""
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if attempt < 5 && lastID != "" {
				time.Sleep(time.Second)
				continue
			}
			return fmt.Errorf("reach the API at %s: %w", c.base, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return c.send(req, nil)
		}
		stop, err := readEvents(resp.Body, func(ev sseEvent) (bool, error) {
			if ev.id != "" {
				lastID = ev.id
			}
			return fn(ev)
		})
		resp.Body.Close()
		if stop || err != nil || ctx.Err() != nil {
			return err
		}
		if attempt >= 5 {
			return errors.New("the log stream keeps breaking")
		}
		time.Sleep(time.Second) // the stream broke: resume
	}
}

func readEvents(r io.Reader, fn func(sseEvent) (bool, error)) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" || ev.data != "" {
				if stop, err := fn(ev); stop || err != nil {
					return true, err
				}
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			if ev.data != "" {
				ev.data += "\n"
			}
			ev.data += line[6:]
		}
	}
	return false, nil
}
