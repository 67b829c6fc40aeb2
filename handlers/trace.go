package handlers

import (
	"time"

	"github.com/rtstream/rtstream"
)

// traceID is the delivery's trace id for the delivery-age exemplar; "" when
// its send was not traced.
func traceID(d *rtstream.Delivery) string {
	if d.Trace == nil {
		return ""
	}
	return d.Trace.TraceID()
}

// addTrace appends tr to traced unless it is nil or the last one: the
// results of one record, delivered together, share their trace.
func addTrace(traced []rtstream.DeliveryTrace, tr rtstream.DeliveryTrace) []rtstream.DeliveryTrace {
	if tr == nil || (len(traced) > 0 && traced[len(traced)-1] == tr) {
		return traced
	}
	return append(traced, tr)
}

// addTraces is addTrace for each of ds.
func addTraces(traced []rtstream.DeliveryTrace, ds []rtstream.Delivery) []rtstream.DeliveryTrace {
	for i := range ds {
		traced = addTrace(traced, ds[i].Trace)
	}
	return traced
}

// markWritten tells each trace that its record reached this subscriber's
// socket, the write having begun at start, and returns traced emptied for
// reuse.
func markWritten(traced []rtstream.DeliveryTrace, transport string, start time.Time) []rtstream.DeliveryTrace {
	for i, tr := range traced {
		tr.Written(transport, start)
		traced[i] = nil
	}
	return traced[:0]
}
