package consulkv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// ServiceName is the Consul service every edge registers as.
const ServiceName = "pier-edge"

// Defaults of an Edge registration's check.
const (
	DefaultCheckInterval   = 2 * time.Second
	DefaultCheckTimeout    = time.Second
	DefaultDeregisterAfter = time.Minute // Consul's minimum
)

// Edge is an edge's registration as the Consul service "pier-edge".
type Edge struct {
	ID      string // the edge ID: the service ID
	Address string // the address the edge serves on ("": the agent's)
	Port    int
	// HealthURL is polled by the local agent (HTTP GET; 2xx passing, 429
	// warning, anything else critical), e.g. http://10.0.0.5:8080/healthz.
	HealthURL string
	// Interval between checks (default 2s; Consul's minimum is 1s) and
	// Timeout of each (default 1s).
	Interval, Timeout time.Duration
	// DeregisterAfter: Consul removes the service once its check has been
	// critical this long (default and minimum 1m).
	DeregisterAfter time.Duration
	Tags            []string
	Meta            map[string]string
}

// EdgeCheckID is the ID of the health check RegisterEdge registers for
// edgeID.
func EdgeCheckID(edgeID string) string { return ServiceName + ":" + edgeID }

// RegisterEdge registers the edge with the local agent as the service
// "pier-edge" (service ID e.ID) with an HTTP health check on e.HealthURL,
// replacing an earlier registration of the same ID, and waits until the
// catalog reports the check passing (Consul starts a check critical and
// refuses to bind a session to a critical check). It returns the check ID
// to bind the edge's membership session to: pass it to
// WithSessionChecks. If ctx ends before the check passes the registration
// is removed again.
func (s *Store) RegisterEdge(ctx context.Context, e Edge) (checkID string, err error) {
	if e.ID == "" {
		return "", errors.New("consulkv: register edge: empty edge id")
	}
	if e.HealthURL == "" {
		return "", fmt.Errorf("consulkv: register edge %s: a health check URL is required", e.ID)
	}
	interval := orDefault(e.Interval, DefaultCheckInterval)
	timeout := orDefault(e.Timeout, DefaultCheckTimeout)
	deregister := orDefault(e.DeregisterAfter, DefaultDeregisterAfter)
	checkID = EdgeCheckID(e.ID)
	reg := &api.AgentServiceRegistration{
		ID:      e.ID,
		Name:    ServiceName,
		Address: e.Address,
		Port:    e.Port,
		Tags:    slices.Clone(e.Tags),
		Meta:    e.Meta,
		Check: &api.AgentServiceCheck{
			CheckID:                        checkID,
			Name:                           "pier edge " + e.ID + " health",
			HTTP:                           e.HealthURL,
			Method:                         http.MethodGet,
			Interval:                       interval.String(),
			Timeout:                        timeout.String(),
			DeregisterCriticalServiceAfter: deregister.String(),
		},
	}
	rctx, cancel := s.bound(ctx, 0)
	defer cancel()
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(rctx)
	if err := s.client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return "", fmt.Errorf("consulkv: register edge %s: %w", e.ID, err)
	}
	if err := s.waitPassing(ctx, checkID); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := s.DeregisterEdge(cctx, e.ID); derr != nil {
			s.log.Warn("deregister edge after a failed registration", "edge", e.ID, "err", derr)
		}
		return "", fmt.Errorf("consulkv: register edge %s: wait for its health check to pass: %w", e.ID, err)
	}
	s.log.Info("edge registered", "edge", e.ID, "check", checkID, "health_url", e.HealthURL)
	return checkID, nil
}

// waitPassing blocks (Consul blocking queries on the service's checks)
// until the catalog has the check passing, or ctx ends.
func (s *Store) waitPassing(ctx context.Context, checkID string) error {
	filter := "CheckID == " + strconv.Quote(checkID)
	const wait = time.Minute
	var idx uint64
	for {
		qctx, cancel := s.bound(ctx, wait+wait/16)
		q := query(qctx)
		q.Filter = filter
		q.WaitIndex = idx
		q.WaitTime = wait
		checks, meta, err := s.client.Health().Checks(ServiceName, q)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		for _, c := range checks {
			if c.CheckID == checkID && c.Status == api.HealthPassing {
				return nil
			}
		}
		idx = max(meta.LastIndex, 1)
	}
}

// DeregisterEdge removes the edge's service and check from the local
// agent. An unknown edge is not an error.
func (s *Store) DeregisterEdge(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("consulkv: deregister edge: empty edge id")
	}
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	err := s.client.Agent().ServiceDeregisterOpts(id, query(ctx))
	var se api.StatusError
	if err != nil && !(errors.As(err, &se) && se.Code == http.StatusNotFound) {
		return fmt.Errorf("consulkv: deregister edge %s: %w", id, err)
	}
	return nil
}

// HealthyEdges returns the IDs of the "pier-edge" instances whose checks
// all pass, across the datacenter, sorted.
func (s *Store) HealthyEdges(ctx context.Context) ([]string, error) {
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	entries, _, err := s.client.Health().Service(ServiceName, "", true, query(ctx))
	if err != nil {
		return nil, fmt.Errorf("consulkv: healthy edges: %w", err)
	}
	ids := []string{}
	for _, e := range entries {
		if e.Service != nil {
			ids = append(ids, e.Service.ID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// orDefault returns d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
