package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pierhq/pier/edge"
)

// HTTPSink ships batches to control: POST <URL>/v1/telemetry, gzipped
// JSON, with the edge's telemetry token as a bearer token.
type HTTPSink struct {
	URL    string // control's API base URL
	Token  string
	Client *http.Client // nil: a client with a 10s timeout
}

var _ Sink = (*HTTPSink)(nil)

// Ship posts b.
func (h *HTTPSink) Ship(ctx context.Context, b *edge.TelemetryBatch) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(b); err != nil {
		return fmt.Errorf("encode telemetry: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("encode telemetry: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(h.URL, "/")+"/v1/telemetry", &buf)
	if err != nil {
		return fmt.Errorf("ship telemetry: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+h.Token)
	cl := h.Client
	if cl == nil {
		cl = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("ship telemetry: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("ship telemetry: control answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
