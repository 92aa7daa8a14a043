package databind

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pierhq/pier/edge"
)

// QueueBinding is env.QUEUE of one deployment; it satisfies
// isolate.Binding. Its JavaScript API (promises):
//
//	send(queue, body, {delay})          → the message's id
//	sendBatch(queue, [bodies], {delay}) → the ids
//
// Bodies are JSON values of at most 128 KiB each; delay is in seconds.
// Only the production deployment sends, to queues its pier.json declares.
type QueueBinding struct {
	c          *Client
	deployment string
}

// Queue returns the env.QUEUE binding of one deployment's code.
func (c *Client) Queue(deploymentID string) *QueueBinding {
	return &QueueBinding{c: c, deployment: deploymentID}
}

// Methods lists env.QUEUE's methods.
func (b *QueueBinding) Methods() []string { return []string{"send", "sendBatch"} }

// Call runs one method.
func (b *QueueBinding) Call(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error) {
	var a []json.RawMessage
	if err := json.Unmarshal(args, &a); err != nil || len(a) < 2 {
		return nil, errUser("want (queue, body) or (queue, [bodies])")
	}
	req := edge.QueueSend{DeploymentID: b.deployment}
	if json.Unmarshal(a[0], &req.Queue) != nil || req.Queue == "" {
		return nil, errUser("the queue name must be a string")
	}
	switch method {
	case "send":
		req.Messages = []json.RawMessage{a[1]}
	case "sendBatch":
		if json.Unmarshal(a[1], &req.Messages) != nil {
			return nil, errUser("sendBatch takes an array of messages")
		}
	default:
		return nil, errUser("no such method")
	}
	if len(a) > 2 && string(a[2]) != "null" {
		var opts struct {
			Delay float64 `json:"delay"`
		}
		if json.Unmarshal(a[2], &opts) != nil {
			return nil, errUser("options must be {delay: seconds}")
		}
		req.Delay = opts.Delay
	}
	out, _, err := b.c.post(ctx, "/v1/edge/queue", &req, false)
	if err != nil {
		return nil, err
	}
	var res struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, errUser("the queue answered something unexpected")
	}
	if method == "send" {
		if len(res.IDs) != 1 {
			return nil, errUser(fmt.Sprintf("the queue answered %d ids", len(res.IDs)))
		}
		return json.Marshal(res.IDs[0])
	}
	return json.Marshal(res.IDs)
}
