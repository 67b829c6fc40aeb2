package router

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/rtstream/rtstream/observability"
)

// CrashedReason is the dead-letter reason of an event whose record killed
// the process MaxDeaths times.
const CrashedReason = "crashed the processor"

// MaxDeaths is how many deaths on one record the guard tolerates; the start
// after that many dead-letters the record without evaluating it.
const MaxDeaths = 2

// maxKnownDeaths bounds the deaths a mark remembers (one entry per record
// that killed a process during one careful pass).
const maxKnownDeaths = 64

// MarkStore keeps one mark per partition of the events topic, surviving the
// process (pubsub.Marks keeps them in a compacted topic).
type MarkStore interface {
	// Last is partition p's current mark, nil when it has none.
	Last(ctx context.Context, p int32) ([]byte, error)
	// Put makes mark partition p's current mark, durably.
	Put(ctx context.Context, p int32, mark []byte) error
	// End is the offset the next record of events partition p will get.
	End(ctx context.Context, p int32) (int64, error)
}

// CrashGuard keeps a record that kills the process (a fatal error, the OOM
// killer, a bug) from killing it forever: a process that dies does so without
// committing the record, and every start, on any instance, would read it again.
//
// Writing a mark before every record would cost a produce per record, so the
// guard writes none while a partition runs normally. When an instance takes a
// partition it reads the partition's last mark:
//   - none, or "stopped" by a process that stopped cleanly: it writes
//     "running" and goes on at full speed;
//   - "running" by another owner: that owner died (or lost the partition
//     without stopping). It died on one of the records it could have read,
//     those below the partition's end, which is read now. The guard goes
//     through them carefully: before each, it writes a "careful" mark naming
//     the record, and it counts that unattributed death as "suspect";
//   - "careful": the owner died on the record it names (if it was not
//     committed yet), which now has one more death; the careful pass goes on.
//
// A record whose known deaths, plus the suspect one, reach MaxDeaths is
// dead-lettered without being evaluated, and the suspect death counts as
// attributed. At the careful pass's end the guard writes "running" again.
// Release writes "stopped", keeping an unfinished pass's counts.
type CrashGuard struct {
	store   MarkStore
	owner   string
	log     *slog.Logger
	metrics *observability.Metrics

	mu    sync.Mutex
	parts map[int32]*guarded
}

// guarded is the guard's view of one partition; its mutex serialises the
// partition's records (the router handles them one at a time anyway).
type guarded struct {
	mu sync.Mutex
	partState
}

type partState struct {
	claimed bool
	last    int64 // offset of the last record admitted
	careful bool
	pass    pass
	marked  int64 // offset named by the last careful mark this guard wrote
}

// pass is what a careful pass knows.
type pass struct {
	deaths  map[int64]int // per record offset, processes known to have died on it
	suspect bool          // a death not yet attributed to a record
	until   int64         // the first offset past the records a dead process could have read
}

type markState string

const (
	markRunning markState = "running"
	markCareful markState = "careful"
	markStopped markState = "stopped"
)

// mark is a partition's mark, as stored.
type mark struct {
	State markState `json:"state"`
	Owner string    `json:"owner"`
	// Offset is the record being evaluated (careful).
	Offset  int64         `json:"offset,omitempty"`
	Deaths  map[int64]int `json:"deaths,omitempty"`
	Suspect bool          `json:"suspect,omitempty"`
	Until   int64         `json:"until,omitempty"`
}

// NewCrashGuard guards with the marks in store. Each guard is one owner:
// make one per process.
func NewCrashGuard(store MarkStore, log *slog.Logger, m *observability.Metrics) *CrashGuard {
	host, _ := os.Hostname()
	return &CrashGuard{
		store:   store,
		owner:   fmt.Sprintf("%s/%d/%s", host, os.Getpid(), watermill.NewULID()),
		log:     log,
		metrics: m,
		parts:   make(map[int32]*guarded),
	}
}

func (g *CrashGuard) partition(p int32) *guarded {
	g.mu.Lock()
	defer g.mu.Unlock()
	pt := g.parts[p]
	if pt == nil {
		pt = &guarded{partState: partState{marked: -1}}
		g.parts[p] = pt
	}
	return pt
}

// Admit is asked before the record at offset of partition p is evaluated.
// crashed means the record has killed MaxDeaths processes: dead-letter its
// events without evaluating them. An error (the marks could not be read or
// written) is transient: the record is retried.
func (g *CrashGuard) Admit(ctx context.Context, p int32, offset int64) (crashed bool, err error) {
	pt := g.partition(p)
	pt.mu.Lock()
	defer pt.mu.Unlock()
	// Records of a partition come in order; any other offset means the
	// partition was (re)assigned to this process.
	if !pt.claimed || (offset != pt.last && offset != pt.last+1) {
		if err := g.claim(ctx, p, pt, offset); err != nil {
			return false, err
		}
	}
	pt.last = offset
	if !pt.careful {
		return false, nil
	}
	return g.carefully(ctx, p, pt, offset)
}

// claim reads the partition's mark and decides how to go on.
func (g *CrashGuard) claim(ctx context.Context, p int32, pt *guarded, offset int64) error {
	raw, err := g.store.Last(ctx, p)
	if err != nil {
		return fmt.Errorf("router: crash mark of partition %d: %w", p, err)
	}
	var m mark
	if raw != nil {
		if err := json.Unmarshal(raw, &m); err != nil {
			g.log.Warn("crash marks: unreadable mark, taken for a process that died", "partition", p, "err", err)
			m = mark{State: markRunning}
		}
	}
	if raw != nil && m.Owner == g.owner {
		// This process held the partition before and is alive: nobody died.
		pt.claimed = true
		return nil
	}
	next := pass{deaths: maps.Clone(m.Deaths), suspect: m.Suspect, until: m.Until}
	if next.deaths == nil {
		next.deaths = make(map[int64]int)
	}
	switch {
	case raw == nil, m.State == markStopped && !m.Suspect && len(m.Deaths) == 0:
		if err := g.put(ctx, p, mark{State: markRunning, Owner: g.owner}); err != nil {
			return err
		}
		pt.partState = partState{claimed: true, marked: -1}
		return nil
	case m.State == markCareful && offset <= m.Offset:
		next.deaths[m.Offset]++
	case m.State == markCareful:
		// The named record was committed: the death came after it.
		next.suspect = true
	case m.State != markStopped:
		end, err := g.store.End(ctx, p)
		if err != nil {
			return fmt.Errorf("router: end of partition %d: %w", p, err)
		}
		next = pass{deaths: next.deaths, suspect: true, until: end}
	}
	pt.partState = partState{claimed: true, careful: true, pass: next, marked: -1}
	g.log.Warn("crash marks: a process left this partition without stopping cleanly; "+
		"its records are evaluated one at a time, each after a mark, up to the end it could have read",
		"partition", p, "from", offset, "until", next.until, "deaths", next.deaths, "suspect", next.suspect)
	return nil
}

// carefully admits one record of a careful pass.
func (g *CrashGuard) carefully(ctx context.Context, p int32, pt *guarded, offset int64) (bool, error) {
	if offset >= pt.pass.until {
		// Past every record a dead process could have read.
		if err := g.put(ctx, p, mark{State: markRunning, Owner: g.owner}); err != nil {
			return false, err
		}
		pt.careful = false
		g.log.Info("crash marks: careful pass over", "partition", p, "offset", offset)
		return false, nil
	}
	deaths := pt.pass.deaths[offset]
	crashed := deaths >= MaxDeaths || (pt.pass.suspect && deaths+1 >= MaxDeaths)
	if crashed && deaths < MaxDeaths {
		// The suspect death is taken to be this record's; remember the
		// verdict should the record be handled again.
		pt.pass.suspect = false
		pt.pass.deaths[offset] = MaxDeaths
	}
	if pt.marked != offset {
		// Marked even when crashed: a death while dead-lettering is this
		// record's, not the previous one's.
		m := mark{State: markCareful, Owner: g.owner, Offset: offset, Deaths: pt.pass.deaths,
			Suspect: pt.pass.suspect, Until: pt.pass.until}
		if err := g.put(ctx, p, m); err != nil {
			return false, err
		}
		pt.marked = offset
		g.metrics.CarefulRecord()
	}
	if crashed {
		g.log.Warn("crash marks: record killed the process "+fmt.Sprint(MaxDeaths)+" times; its events go to dead letters unevaluated",
			"partition", p, "offset", offset, "reason", CrashedReason)
	}
	return crashed, nil
}

// Release writes "stopped" for every partition this process still owns, so
// that the next owner goes on at full speed, or resumes an unfinished careful
// pass. Call it once the router has stopped; a partition another process took
// meanwhile keeps that process's mark.
func (g *CrashGuard) Release(ctx context.Context) error {
	g.mu.Lock()
	parts := slices.Sorted(maps.Keys(g.parts))
	g.mu.Unlock()
	var errs []error
	for _, p := range parts {
		pt := g.partition(p)
		pt.mu.Lock()
		err := g.release(ctx, p, pt)
		pt.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("router: releasing crash marks: %v", errs)
	}
	return nil
}

func (g *CrashGuard) release(ctx context.Context, p int32, pt *guarded) error {
	if !pt.claimed {
		return nil
	}
	raw, err := g.store.Last(ctx, p)
	if err != nil {
		return err
	}
	var cur mark
	if raw == nil || json.Unmarshal(raw, &cur) != nil || cur.Owner != g.owner {
		return nil
	}
	m := mark{State: markStopped, Owner: g.owner}
	if pt.careful {
		m.Deaths, m.Suspect, m.Until = pt.pass.deaths, pt.pass.suspect, pt.pass.until
	}
	return g.put(ctx, p, m)
}

func (g *CrashGuard) put(ctx context.Context, p int32, m mark) error {
	if len(m.Deaths) > maxKnownDeaths {
		// Forget the lowest offsets: the pass is past them.
		keys := slices.Sorted(maps.Keys(m.Deaths))
		m.Deaths = maps.Clone(m.Deaths)
		for _, k := range keys[:len(keys)-maxKnownDeaths] {
			delete(m.Deaths, k)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("router: encode crash mark: %w", err)
	}
	if err := g.store.Put(ctx, p, b); err != nil {
		return fmt.Errorf("router: crash mark of partition %d: %w", p, err)
	}
	return nil
}
