package idempotency

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Memory is the in-process Store: one instance's keys only. Answers live in
// an LRU bounded by MaxKeys and expire after the TTL; claims in flight are
// kept apart from it, so that a burst of new keys can evict old answers but
// never a claim whose request is still running (evicting one would let its
// retry send the events a second time).
type Memory struct {
	cfg     Config
	maxKeys int
	now     func() time.Time

	mu      sync.Mutex
	pending map[string]pendingEntry
	// sweepAt is the size of pending at which expired claims are swept:
	// claims end by Complete or Release, so only a crashed handler leaves
	// one behind, and an amortised sweep is enough to bound them.
	sweepAt int
	done    map[string]*list.Element // of *doneEntry
	lru     *list.List               // front: most recently used
}

type pendingEntry struct {
	fingerprint, token string
	expires            time.Time
}

type doneEntry struct {
	key, fingerprint string
	answer           Answer
	expires          time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an in-process store holding at most maxKeys answers
// (DefaultMaxKeys when maxKeys <= 0, IDEMPOTENCY_MAX_KEYS).
func NewMemory(cfg Config, maxKeys int) *Memory {
	cfg.setDefaults()
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Memory{
		cfg:     cfg,
		maxKeys: maxKeys,
		now:     time.Now,
		pending: map[string]pendingEntry{},
		sweepAt: 64,
		done:    map[string]*list.Element{},
		lru:     list.New(),
	}
}

// Begin claims key or reports what holds it.
func (m *Memory) Begin(_ context.Context, key, fingerprint string) (Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if el, ok := m.done[key]; ok {
		d := el.Value.(*doneEntry)
		switch {
		case !now.Before(d.expires):
			m.removeDone(el)
		case d.fingerprint != fingerprint:
			return Outcome{State: Mismatch}, nil
		default:
			m.lru.MoveToFront(el)
			body := append([]byte(nil), d.answer.Body...) // the caller may not change ours
			return Outcome{State: Replay, Answer: Answer{Status: d.answer.Status, Body: body}}, nil
		}
	}
	if p, ok := m.pending[key]; ok {
		switch {
		case !now.Before(p.expires):
			delete(m.pending, key)
		case p.fingerprint != fingerprint:
			return Outcome{State: Mismatch}, nil
		default:
			return Outcome{State: InFlight}, nil
		}
	}
	if len(m.pending) >= m.sweepAt {
		for k, p := range m.pending {
			if !now.Before(p.expires) {
				delete(m.pending, k)
			}
		}
		m.sweepAt = max(64, 2*len(m.pending))
	}
	token := newToken()
	m.pending[key] = pendingEntry{fingerprint: fingerprint, token: token, expires: now.Add(m.cfg.PendingTTL)}
	return Outcome{State: Claimed, Token: token}, nil
}

// Complete stores the answer of the claim and evicts the least recently used
// answers over MaxKeys and expired ones at the cold end.
func (m *Memory) Complete(_ context.Context, key, token string, a Answer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	p, ok := m.pending[key]
	if !ok || p.token != token || !now.Before(p.expires) {
		return ErrClaimLost
	}
	delete(m.pending, key)
	if el, ok := m.done[key]; ok { // an expired answer Begin did not see yet
		m.removeDone(el)
	}
	d := &doneEntry{key: key, fingerprint: p.fingerprint, expires: now.Add(m.cfg.TTL),
		answer: Answer{Status: a.Status, Body: append([]byte(nil), a.Body...)}}
	m.done[key] = m.lru.PushFront(d)
	for m.lru.Len() > 0 {
		back := m.lru.Back()
		if m.lru.Len() <= m.maxKeys && now.Before(back.Value.(*doneEntry).expires) {
			break
		}
		m.removeDone(back)
	}
	return nil
}

// Release drops the claim if token still holds it.
func (m *Memory) Release(_ context.Context, key, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pending[key]; ok && p.token == token {
		delete(m.pending, key)
	}
	return nil
}

// Close does nothing: the store holds no outside resources.
func (m *Memory) Close() error { return nil }

// Len is the number of answers and claims held, expired ones included until
// they are swept.
func (m *Memory) Len() (answers, claims int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len(), len(m.pending)
}

func (m *Memory) removeDone(el *list.Element) {
	delete(m.done, el.Value.(*doneEntry).key)
	m.lru.Remove(el)
}
