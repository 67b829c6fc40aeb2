package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"
)

// The middleware phase answers issue 3: auth, rate limiting and the access log
// together may cost at most 10% of single-event POST throughput. It compares
// two servers started the same way but for:
//
//	ON:  API_KEYS set and the key sent, LOG_LEVEL=info (one JSON access log
//	     line per request, written to the server's log file)
//	OFF: AUTH_DISABLED=true and no key sent, LOG_LEVEL=warn (no access log)
//
// Both run the rate limiter at a limit no request reaches: the server has no
// setting that turns it off. The per-IP limit runs in both, so its cost is
// not in the difference; the per-key limit runs in ON only, as the server
// skips it for the anonymous principal of AUTH_DISABLED.
func middlewareComparison(o options) comparison {
	return comparison{
		phase:  "middleware",
		on:     serverVariant{name: "mw-on", auth: true, logLevel: "info"},
		off:    serverVariant{name: "mw-off", logLevel: "warn"},
		rounds: o.MWRounds,
		target: targetMiddlewareCost,
		check: func(ctx context.Context, on, _ *compareSide) (string, error) {
			// A request without a key must be refused by ON, or ON is
			// not measuring auth at all.
			status, err := unauthenticatedStatus(ctx, on)
			if err != nil {
				return "", err
			}
			if status != http.StatusUnauthorized {
				return "", fmt.Errorf("ON server answered %d, not 401, to a POST without a key", status)
			}
			return "ON answered 401 to a POST without a key", nil
		},
	}
}

// unauthenticatedStatus sends one event without a key to the side's server
// and returns the status it answered.
func unauthenticatedStatus(ctx context.Context, s *compareSide) (int, error) {
	body := appendBody(nil, -1, 1, time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+"/v1/streams/"+s.streams[0]+"/events", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.lt.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST without a key: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
