package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

// Queues:
//
//	POST /v1/edge/queue                                 an env.QUEUE send of server code (bearer: the telemetry token)
//	GET  /v1/projects/{p}/queues                        the queues the live production deployment declares
//	POST /v1/projects/{p}/queues/{queue}/messages       {"messages": [JSON…], "delay": seconds} → 202 {"ids": […]}
//	GET  /v1/projects/{p}/queues/{queue}/messages?state=dead|ready&limit=

const maxQueueBody = control.MaxSendBatch*control.MaxMessageBytes + 64<<10

func (s *Server) routeQueues(e *gin.Engine, read, write *gin.RouterGroup) {
	if s.deps.Queues == nil {
		return
	}
	e.POST("/v1/edge/queue", s.telemetryAuth, s.handle(s.edgeQueue))
	read.GET("/projects/:project/queues", s.handle(s.listQueues))
	write.POST("/projects/:project/queues/:queue/messages", s.handle(s.sendMessages))
	read.GET("/projects/:project/queues/:queue/messages", s.handle(s.listMessages))
}

func (s *Server) edgeQueue(c *gin.Context) (int, any, error) {
	var req edge.QueueSend
	if err := readJSON(c, &req, maxQueueBody); err != nil {
		return 0, nil, err
	}
	ids, err := s.deps.Queues.SendFromDeployment(c.Request.Context(), req.DeploymentID, req.Queue, req.Messages,
		time.Duration(req.Delay*float64(time.Second)))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"ids": ids}, nil
}

func (s *Server) listQueues(c *gin.Context) (int, any, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	qs, err := s.deps.Queues.Queues(c.Request.Context(), p.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"queues": qs}, nil
}

type sendMessagesRequest struct {
	Messages []json.RawMessage `json:"messages"`
	Delay    float64           `json:"delay"`
}

func (s *Server) sendMessages(c *gin.Context) (int, any, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	var req sendMessagesRequest
	if err := readJSON(c, &req, maxQueueBody); err != nil {
		return 0, nil, err
	}
	ids, err := s.deps.Queues.Send(c.Request.Context(), p.ID, c.Param("queue"), req.Messages, time.Duration(req.Delay*float64(time.Second)))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, gin.H{"ids": ids}, nil
}

func (s *Server) listMessages(c *gin.Context) (int, any, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryLimit(c, 0, 1000)
	if err != nil {
		return 0, nil, err
	}
	state := c.DefaultQuery("state", control.MessageDead)
	msgs, err := s.deps.Queues.Messages(c.Request.Context(), p.ID, c.Param("queue"), state, limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"messages": msgs}, nil
}
