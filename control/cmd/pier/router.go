package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/consulkv"
)

// router adapts the edge's coordination protocol to control's
// deploy.Router port, translating its errors into control's sentinels.
type router struct {
	c *coord.Coordinator
	// readyTimeout and drain are the cutover policy (control.ready_timeout,
	// control.drain_unready).
	readyTimeout time.Duration
	drain        bool
}

var (
	_ deploy.Router  = router{}
	_ deploy.Retirer = router{}
)

// Retire removes one environment's pointer (a closed pull request's
// preview), so edges stop routing <env>.<project>.
func (r router) Retire(ctx context.Context, projectID, env string) error {
	if env == control.Production {
		return fmt.Errorf("retire %s: production is never retired", projectID)
	}
	return r.c.DeletePointer(ctx, projectID, env)
}

func (r router) Announce(ctx context.Context, projectID, projectName, deploymentID string) error {
	return r.c.Announce(ctx, coord.Announcement{DeploymentID: deploymentID, ProjectID: projectID, ProjectName: projectName})
}

func (r router) Retract(ctx context.Context, deploymentID string) error {
	return r.c.Retract(ctx, deploymentID)
}

func (r router) Promote(ctx context.Context, projectID, projectName, env, deploymentID string) (*deploy.Cutover, error) {
	cut, err := r.c.Promote(ctx, coord.PromoteRequest{
		ProjectID: projectID, ProjectName: projectName, Environment: env, DeploymentID: deploymentID,
		ReadyTimeout: r.readyTimeout, DrainNotReady: r.drain,
	})
	if err != nil {
		var nr *coord.NotReadyError
		switch {
		case errors.As(err, &nr):
			return nil, fmt.Errorf("edges %v did not confirm the deployment in time; the previous deployment stays live: %w", nr.Missing, control.ErrConflict)
		case errors.Is(err, coord.ErrCASFailed), errors.Is(err, coord.ErrLockLost):
			return nil, fmt.Errorf("another promotion of this project interfered; nothing changed, try again: %w", control.ErrConflict)
		}
		return nil, err
	}
	out := &deploy.Cutover{DeploymentID: cut.DeploymentID, Previous: cut.Previous, Total: cut.Total}
	for _, e := range cut.Edges {
		out.Edges = append(out.Edges, deploy.EdgeReady{Edge: e.EdgeID, Wait: e.Wait})
	}
	return out, nil
}

func (r router) Active(ctx context.Context, projectID, env string) (string, error) {
	p, err := r.c.Pointer(ctx, projectID, env)
	if errors.Is(err, coord.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return p.DeploymentID, nil
}

func (r router) Forget(ctx context.Context, projectID string) error {
	return r.c.DeleteProject(ctx, projectID)
}

// consulEdge joins an edge to the pool the Consul way: the edge is
// registered as the service "pier-edge" with an HTTP check on its
// /healthz, and its membership session is bound to that check, so an edge
// that stops answering leaves the pool by itself.
type consulEdge struct {
	*coord.Coordinator
	store *consulkv.Store
	cfg   coord.Config
}

func (c consulEdge) Join(ctx context.Context, e coord.EdgeInfo) (*coord.Membership, error) {
	host, portStr, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return nil, fmt.Errorf("edge address %q: %w", e.Addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	checkHost := host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		checkHost = "127.0.0.1" // the local Consul agent checks its own node
	}
	checkID, err := c.store.RegisterEdge(ctx, consulkv.Edge{ID: e.ID, Address: host, Port: port,
		HealthURL: "http://" + net.JoinHostPort(checkHost, portStr) + "/healthz"})
	if err != nil {
		return nil, fmt.Errorf("register edge %s with consul: %w", e.ID, err)
	}
	return coord.New(c.cfg, c.store.WithSessionChecks(checkID)).Join(ctx, e)
}
