package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"

	"github.com/pierhq/pier/edge"
)

// EdgeRunner is the Runner over the edges' run endpoint (POST /_pier/run,
// bearer: the telemetry token, which edges accept as their run token). It
// tries the healthy edges in random order until one holds the deployment.
type EdgeRunner struct {
	// Edges returns the addresses (host:port) of the healthy edges.
	Edges  func(ctx context.Context) ([]string, error)
	Token  string
	Client *http.Client // nil: http.DefaultClient (the run's context bounds it)
}

var _ Runner = (*EdgeRunner)(nil)

// errNoEdge: no edge could run the function.
var errNoEdge = errors.New("no healthy edge could run the function")

// Run runs req on one edge.
func (r *EdgeRunner) Run(ctx context.Context, req edge.RunRequest) (*edge.RunResult, error) {
	addrs, err := r.Edges(ctx)
	if err != nil {
		return nil, fmt.Errorf("list edges: %w", err)
	}
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	cl := r.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	last := errNoEdge
	for _, a := range addrs {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a+"/_pier/run", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		hr.Header.Set("Authorization", "Bearer "+r.Token)
		hr.Header.Set("Content-Type", "application/json")
		resp, err := cl.Do(hr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %v", errNoEdge, ctx.Err())
			}
			last = fmt.Errorf("%w: edge %s unreachable", errNoEdge, a)
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("%w: edge %s answered %d", errNoEdge, a, resp.StatusCode)
			continue
		}
		var res edge.RunResult
		if err := json.Unmarshal(raw, &res); err != nil {
			last = fmt.Errorf("%w: edge %s answered something unexpected", errNoEdge, a)
			continue
		}
		return &res, nil
	}
	return nil, last
}
