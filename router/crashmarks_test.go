package router_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/rtstream/rtstream/router"
)

// memMarks keeps marks in memory: the guard's decisions are tested here over
// many life stories, and once on real Kafka by the e2e crash test.
type memMarks struct {
	mu    sync.Mutex
	marks map[int32][]byte
	puts  int
	end   int64
	fail  error
}

func (s *memMarks) Last(_ context.Context, p int32) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	return s.marks[p], nil
}

func (s *memMarks) Put(_ context.Context, p int32, m []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.marks[p] = slices.Clone(m)
	s.puts++
	return nil
}

func (s *memMarks) End(context.Context, int32) (int64, error) { return s.end, nil }

// life runs processes over one partition of records 0..n-1. A process
// starts from the committed offset and commits every commitEvery records; a
// record in kills kills the process (that many times; -1: every time).
type life struct {
	t           *testing.T
	store       *memMarks
	n           int64
	commitEvery int64
	kills       map[int64]int

	committed int64
	deaths    map[int64]int
	processed map[int64]int
	dead      map[int64]int
}

func newLife(t *testing.T, n, commitEvery int64, kills map[int64]int) *life {
	return &life{t: t, store: &memMarks{marks: map[int32][]byte{}, end: n}, n: n, commitEvery: commitEvery,
		kills: kills, deaths: map[int64]int{}, processed: map[int64]int{}, dead: map[int64]int{}}
}

// start runs one process until it dies, or stops cleanly at offset stop
// (or at the end). It reports whether the process died.
func (l *life) start(stop int64) bool {
	ctx := context.Background()
	g := router.NewCrashGuard(l.store, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	var handled int64
	for off := l.committed; off < min(stop, l.n); off++ {
		crashed, err := g.Admit(ctx, 0, off)
		if err != nil {
			l.t.Fatalf("Admit(%d): %v", off, err)
		}
		switch {
		case crashed:
			l.dead[off]++
		case l.kills[off] != 0:
			if l.kills[off] > 0 {
				l.kills[off]--
			}
			l.deaths[off]++
			return true
		default:
			l.processed[off]++
		}
		if handled++; handled%l.commitEvery == 0 {
			l.committed = off + 1
		}
	}
	l.committed = min(stop, l.n)
	if err := g.Release(ctx); err != nil {
		l.t.Fatal(err)
	}
	return false
}

// runToEnd starts processes until one gets through; it fails the test after
// more starts than any correct guard needs.
func (l *life) runToEnd() (starts int) {
	for starts = 1; l.start(l.n); starts++ {
		if starts > 10 {
			l.t.Fatalf("still dying after %d starts: deaths %v", starts, l.deaths)
		}
	}
	return starts
}

func TestCrashGuard(t *testing.T) {
	for _, tc := range []struct {
		name        string
		commitEvery int64
		kills       map[int64]int
		// stopAt stops one process cleanly at that offset first (0: no).
		stopAt     int64
		wantDeaths map[int64]int
		wantDead   []int64
		wantStarts int
	}{
		{name: "no crash", commitEvery: 1, wantStarts: 1, wantDeaths: map[int64]int{}},
		{name: "a record that always kills dies twice, then goes to dead letters", commitEvery: 1,
			kills: map[int64]int{5: -1}, wantDeaths: map[int64]int{5: 2}, wantDead: []int64{5}, wantStarts: 3},
		{name: "the same when offsets are committed late", commitEvery: 4,
			kills: map[int64]int{5: -1}, wantDeaths: map[int64]int{5: 2}, wantDead: []int64{5}, wantStarts: 3},
		{name: "the first record", commitEvery: 3,
			kills: map[int64]int{0: -1}, wantDeaths: map[int64]int{0: 2}, wantDead: []int64{0}, wantStarts: 3},
		{name: "a death that does not recur dead-letters nothing", commitEvery: 2,
			kills: map[int64]int{3: 1}, wantDeaths: map[int64]int{3: 1}, wantStarts: 2},
		{name: "two records that always kill", commitEvery: 1,
			kills: map[int64]int{2: -1, 7: -1}, wantDeaths: map[int64]int{2: 2, 7: 2}, wantDead: []int64{2, 7}, wantStarts: 5},
		{name: "a clean stop in a careful pass keeps the counts", commitEvery: 1, stopAt: 3,
			kills: map[int64]int{5: -1}, wantDeaths: map[int64]int{5: 2}, wantDead: []int64{5}, wantStarts: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLife(t, 10, tc.commitEvery, tc.kills)
			starts := 0
			if tc.stopAt > 0 {
				// Die on the record once in fast mode, then stop cleanly
				// in the careful pass before reaching it again.
				if !l.start(l.n) {
					t.Fatal("the first start did not die")
				}
				if l.start(tc.stopAt) {
					t.Fatal("the stopping start died")
				}
				starts = 2
			}
			starts += l.runToEnd()
			if !maps.Equal(l.deaths, tc.wantDeaths) {
				t.Errorf("deaths %v; want %v", l.deaths, tc.wantDeaths)
			}
			if got := slices.Sorted(maps.Keys(l.dead)); !slices.Equal(got, tc.wantDead) {
				t.Errorf("dead-lettered %v; want %v", got, tc.wantDead)
			}
			if starts != tc.wantStarts {
				t.Errorf("%d starts; want %d", starts, tc.wantStarts)
			}
			for off := range l.n {
				if l.dead[off] == 0 && l.processed[off] == 0 {
					t.Errorf("record %d neither processed nor dead-lettered", off)
				}
				if l.dead[off] > 0 && l.processed[off] > 0 {
					t.Errorf("record %d both processed and dead-lettered", off)
				}
			}
		})
	}
}

// TestCrashGuardCostsNothingWhileRunning: a partition taken over from a
// clean stop writes one mark, not one per record.
func TestCrashGuardCostsNothingWhileRunning(t *testing.T) {
	l := newLife(t, 1000, 10, nil)
	l.runToEnd()
	if l.store.puts != 2 { // "running" at the claim, "stopped" at Release
		t.Fatalf("%d marks written for 1,000 records; want 2", l.store.puts)
	}
	l.committed, l.n, l.store.end = 1000, 2000, 2000
	l.runToEnd()
	if l.store.puts != 4 {
		t.Fatalf("%d marks written after a clean handover; want 4", l.store.puts)
	}
}

// TestCrashGuardAcrossInstances: two live instances share the partition's
// marks; a record that kills each once is dead-lettered by the third owner.
func TestCrashGuardAcrossInstances(t *testing.T) {
	ctx := context.Background()
	store := &memMarks{marks: map[int32][]byte{}, end: 3}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, b, c := router.NewCrashGuard(store, discard, nil), router.NewCrashGuard(store, discard, nil), router.NewCrashGuard(store, discard, nil)
	for _, step := range []struct {
		g           *router.CrashGuard
		off         int64
		wantCrashed bool
	}{
		{a, 0, false}, {a, 1, false}, // a dies evaluating 1
		{b, 1, false}, // b takes over, goes carefully, dies on 1
		{c, 1, true},  // c dead-letters it
		{c, 2, false},
	} {
		crashed, err := step.g.Admit(ctx, 0, step.off)
		if err != nil || crashed != step.wantCrashed {
			t.Fatalf("Admit(%d) = %v, %v; want %v", step.off, crashed, err, step.wantCrashed)
		}
	}
}

func TestCrashGuardStoreErrorsAreTransient(t *testing.T) {
	down := errors.New("broker down")
	store := &memMarks{marks: map[int32][]byte{}, end: 1, fail: down}
	g := router.NewCrashGuard(store, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if _, err := g.Admit(context.Background(), 0, 0); !errors.Is(err, down) || router.IsPermanent(err) {
		t.Fatalf("Admit with the store down: %v; want a transient error wrapping %v", err, down)
	}
	store.fail = nil
	if crashed, err := g.Admit(context.Background(), 0, 0); err != nil || crashed {
		t.Fatalf("Admit once the store is back: %v, %v", crashed, err)
	}
}
