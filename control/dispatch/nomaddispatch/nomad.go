package nomaddispatch

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// jobsAPI is the part of Nomad's jobs API the dispatcher uses (the
// CatalogAPI style: the client's own method set, narrowed). ACL
// capabilities on the namespace:
//
//	ParseHCLOpts, Register    submit-job (implies parse-job); Register only
//	Dispatch                  dispatch-job
//	Allocations, Evaluations  read-job
//	Deregister                submit-job (stopping a build past its deadline)
type jobsAPI interface {
	ParseHCLOpts(req *api.JobsParseRequest) (*api.Job, error)
	Register(job *api.Job, q *api.WriteOptions) (*api.JobRegisterResponse, *api.WriteMeta, error)
	Dispatch(jobID string, meta map[string]string, payload []byte, idPrefixTemplate string, q *api.WriteOptions) (*api.JobDispatchResponse, *api.WriteMeta, error)
	Allocations(jobID string, allAllocs bool, q *api.QueryOptions) ([]*api.AllocationListStub, *api.QueryMeta, error)
	Evaluations(jobID string, q *api.QueryOptions) ([]*api.Evaluation, *api.QueryMeta, error)
	Deregister(jobID string, purge bool, q *api.WriteOptions) (string, *api.WriteMeta, error)
}

// allocsAPI reads one allocation with blocking queries. ACL: read-job.
type allocsAPI interface {
	Info(allocID string, q *api.QueryOptions) (*api.Allocation, *api.QueryMeta, error)
}

// logsAPI streams a task's stdout and stderr. ACL: read-logs (or read-fs)
// on the namespace; with node:read as well the client connects to the
// Nomad client node directly, otherwise through a server.
type logsAPI interface {
	Logs(alloc *api.Allocation, follow bool, task, logType, origin string, offset int64,
		cancel <-chan struct{}, q *api.QueryOptions) (<-chan *api.StreamFrame, <-chan error)
}

var (
	_ jobsAPI   = (*api.Jobs)(nil)
	_ allocsAPI = (*api.Allocations)(nil)
	_ logsAPI   = (*api.AllocFS)(nil)
)

// statusOf returns the HTTP status of a Nomad API error, or 0.
func statusOf(err error) int {
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) {
		return ue.StatusCode()
	}
	var uep *api.UnexpectedResponseError
	if errors.As(err, &uep) {
		return uep.StatusCode()
	}
	return 0
}

// notRegistered reports whether a dispatch failed because the job does
// not exist (Nomad 1.10 answers 500 "parameterized job not found").
func notRegistered(err error) bool {
	s := statusOf(err)
	return s == http.StatusNotFound || (s != 0 && strings.Contains(err.Error(), "job not found"))
}

// retryable reports whether a failed call may succeed if repeated: network
// errors and server-side (5xx) failures, not refusals.
func retryable(err error) bool {
	if s := statusOf(err); s != 0 {
		return s >= 500 || s == http.StatusTooManyRequests
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}

// explain turns a Nomad API error into user-safe text for the build log
// and the operator log, keeping the original error wrapped.
func explain(op string, err error) error {
	switch s := statusOf(err); {
	case s == http.StatusForbidden:
		return fmt.Errorf("%s: nomad refused the request (check the token's ACL policy): %w", op, err)
	case s == http.StatusNotFound:
		return fmt.Errorf("%s: not found in nomad: %w", op, err)
	case s != 0:
		return fmt.Errorf("%s: nomad answered %d: %w", op, s, err)
	default:
		return fmt.Errorf("%s: cannot reach nomad: %w", op, err)
	}
}
