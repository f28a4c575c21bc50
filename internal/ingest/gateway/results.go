package gateway

import (
	"container/list"
	"sync"

	"github.com/cqrs-ledger/ledger/internal/codec"
)

// outcome is what a waiter needs of a CommandResult.
type outcome struct {
	accepted bool
	reason   string
	message  string
	version  int64
	events   []eventRef
}

type eventRef struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	Version int64  `json:"version"`
}

func outcomeOf(r *codec.CommandResult) *outcome {
	o := &outcome{
		accepted: r.Status == "ACCEPTED",
		reason:   r.Reason,
		message:  r.Message,
		version:  r.Version,
		events:   make([]eventRef, len(r.Events)),
	}
	for i, e := range r.Events {
		o.events[i] = eventRef{EventID: e.EventID, Type: e.Type, Version: e.Version}
	}
	return o
}

// waiters matches command results to the requests waiting for them, by
// command id. A request registers before it produces, so a result that
// arrives before the produce call returns is not missed; recent results are
// also kept in a bounded LRU, so a registration that comes just after its
// result (a client retrying the same command id) still completes. Both are
// bounded: at most maxWaiting registrations and recentCap results. Safe for
// concurrent use.
type waiters struct {
	mu         sync.Mutex
	waiting    map[string]map[*waiter]struct{}
	n          int // registrations in waiting
	maxWaiting int

	recent    map[string]*list.Element // of *recentEntry
	order     *list.List               // front = most recently completed
	recentCap int
}

type waiter struct {
	ch chan *outcome // buffered 1, receives at most one outcome
}

type recentEntry struct {
	id string
	o  *outcome
}

func newWaiters(maxWaiting, recentCap int) *waiters {
	return &waiters{
		waiting:    map[string]map[*waiter]struct{}{},
		maxWaiting: maxWaiting,
		recent:     map[string]*list.Element{},
		order:      list.New(),
		recentCap:  recentCap,
	}
}

// register starts waiting for the result of id. It returns nil when the
// registry is full (the caller answers "pending" without waiting). The
// caller must call cancel when it stops waiting, whatever happened.
func (ws *waiters) register(id string) (w *waiter, cancel func()) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w = &waiter{ch: make(chan *outcome, 1)}
	if el, ok := ws.recent[id]; ok {
		ws.order.MoveToFront(el)
		w.ch <- el.Value.(*recentEntry).o
		return w, func() {}
	}
	if ws.n >= ws.maxWaiting {
		return nil, func() {}
	}
	set := ws.waiting[id]
	if set == nil {
		set = map[*waiter]struct{}{}
		ws.waiting[id] = set
	}
	set[w] = struct{}{}
	ws.n++
	return w, func() { ws.remove(id, w) }
}

func (ws *waiters) remove(id string, w *waiter) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	set := ws.waiting[id]
	if _, ok := set[w]; !ok {
		return // completed already
	}
	delete(set, w)
	ws.n--
	if len(set) == 0 {
		delete(ws.waiting, id)
	}
}

// complete delivers the outcome of id to its waiters and remembers it.
func (ws *waiters) complete(id string, o *outcome) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.waiting[id] {
		w.ch <- o // buffered, and each waiter gets exactly one
		ws.n--
	}
	delete(ws.waiting, id)

	if el, ok := ws.recent[id]; ok {
		el.Value.(*recentEntry).o = o
		ws.order.MoveToFront(el)
		return
	}
	ws.recent[id] = ws.order.PushFront(&recentEntry{id: id, o: o})
	for ws.order.Len() > ws.recentCap {
		last := ws.order.Back()
		ws.order.Remove(last)
		delete(ws.recent, last.Value.(*recentEntry).id)
	}
}

// count returns the registrations currently waiting.
func (ws *waiters) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.n
}
