package client

import (
	"context"
	"net/http"
)

// Usage is GET /v1/usage: the caller's tenant, each quota's use and limit
// (by its name: "streams", "held_connections", "ingest_bytes_per_second";
// a limit of 0 is none), and what it sent in the last minute, hour and day
// (by "minute", "hour", "day").
type Usage struct {
	Tenant string                `json:"tenant"`
	Quotas map[string]QuotaUsage `json:"quotas"`
	Sent   map[string]Sent       `json:"sent"`
}

// QuotaUsage is one quota of Usage.
type QuotaUsage struct {
	Used  int64 `json:"used"`
	Limit int64 `json:"limit"`
}

// Sent is what the tenant sent in one window of Usage.
type Sent struct {
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
}

// Usage reads the caller's tenant's quotas and recent sends. A request over
// a count quota fails with an *Error of status 403 whose Type ends in
// "/quota-exceeded".
func (c *Client) Usage(ctx context.Context) (*Usage, error) {
	var u Usage
	if _, err := c.do(ctx, http.MethodGet, "/v1/usage", nil, nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}
