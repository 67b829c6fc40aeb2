package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmetrics "github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream/handlers"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/router"
)

// routerRun is the processing router while it runs.
type routerRun struct {
	rt    *message.Router
	group string
	guard *router.CrashGuard
	stop  context.CancelFunc
	done  chan error
}

// startRouter builds the router (instrumented with Watermill's metrics,
// guarded by crash marks) and returns once it runs, or ctx is done.
func (a *app) startRouter(ctx context.Context) error {
	kcfg := a.kcfg()
	wlog := watermill.NewSlogLogger(a.log.With("component", "watermill"))
	r := &routerRun{group: a.cfg.TopicPrefix + "-router", done: make(chan error, 1)}
	sub, err := pubsub.NewSubscriber(kcfg, r.group, wlog)
	if err != nil {
		return err
	}
	var in message.Subscriber = sub
	var out message.Publisher = a.routerPub
	var wm *wmetrics.PrometheusMetricsBuilder
	if a.metrics != nil {
		b := wmetrics.NewPrometheusMetricsBuilder(a.reg, "rtstream", "watermill")
		wm = &b
		if in, err = wm.DecorateSubscriber(in); err != nil {
			return err
		}
		if out, err = wm.DecoratePublisher(out); err != nil {
			return err
		}
	}
	marks, err := pubsub.OpenMarks(kcfg)
	if err != nil {
		return err
	}
	a.onClose(func() { marks.Close() })
	r.guard = router.NewCrashGuard(marks, a.log.With("component", "router"), a.metrics)
	r.rt, err = router.New(router.Config{Topics: kcfg.Topics(), Streams: a.registry, ConsumerGroup: r.group,
		ThrottlePerSecond: int64(a.cfg.Throttle), Metrics: a.metrics, CrashGuard: r.guard, Tracing: a.tracing}, in, out, wlog)
	if err != nil {
		return err
	}
	if wm != nil {
		wm.AddPrometheusRouterMetrics(r.rt)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	a.router = r
	a.onClose(stop)
	go func() { r.done <- r.rt.Run(runCtx) }()
	select {
	case <-r.rt.Running():
		return nil
	case err := <-r.done:
		return fmt.Errorf("router: %w", err)
	case <-ctx.Done():
		return nil
	}
}

// shutdown stops the router, waits for its handlers, then releases its crash
// marks so that the next owner of each partition goes on at full speed.
func (r *routerRun) shutdown(log interface{ Warn(string, ...any) }) {
	r.stop()
	if err := <-r.done; err != nil {
		log.Warn("router shutdown", "err", err)
	}
	// Its own deadline: draining subscribers may have used up the grace.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.guard.Release(ctx); err != nil {
		log.Warn("router shutdown", "err", err)
	}
}

// readyChecks are /readyz's checks, by component.
func (a *app) readyChecks() map[string]handlers.Check {
	return map[string]handlers.Check{
		"kafka":  a.registry.Ping,
		"fanout": a.results.Check,
		"router": func(context.Context) error {
			if !a.router.rt.IsRunning() {
				return errors.New("not running")
			}
			return nil
		},
	}
}

// watchReadiness keeps the readiness and router gauges current for alerts,
// which must not depend on someone polling /readyz.
func watchReadiness(ctx context.Context, checks map[string]handlers.Check, routerRunning func() bool, m *observability.Metrics, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		ok := true
		for _, check := range checks {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if check(cctx) != nil {
				ok = false
			}
			cancel()
		}
		m.Ready(ok)
		m.RouterRunning(routerRunning())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
