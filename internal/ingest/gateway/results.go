package gateway

import (
	"strconv"
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
		accepted: r.Status == codec.StatusAccepted,
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

// waiters matches command results to the requests waiting for them. A
// request waits on its command's (aggregate id, command id) and registers
// before it produces, so a result that arrives before the produce call
// returns is not missed; once the produce is acknowledged it learns the
// command record's position, and only the result that names that position
// (the processor's command-offset header) answers it. So a request is
// never answered with the outcome of another request under the same id
// (an earlier one, or one for another account), and every request gets
// its own answer: the processor answers every command record, repeats
// included. A result without the header (a processor from before it)
// answers every waiter of its key. Registrations are bounded by
// maxWaiting. Safe for concurrent use.
type waiters struct {
	mu         sync.Mutex
	waiting    map[waitKey]map[*waiter]struct{}
	n          int // registrations in waiting
	maxWaiting int
}

// waitKey is what a result is matched on before its position is compared.
type waitKey struct{ aggregate, command string }

// maxEarly bounds the results a waiter keeps while its position is unknown.
const maxEarly = 8

type waiter struct {
	ch chan *outcome // buffered 1, receives at most one outcome

	// Guarded by waiters.mu.
	at    string              // "<partition>/<offset>" of the command; "" until produced
	early map[string]*outcome // results that came before at was known, by position
	done  bool
}

func newWaiters(maxWaiting int) *waiters {
	return &waiters{waiting: map[waitKey]map[*waiter]struct{}{}, maxWaiting: maxWaiting}
}

// register starts waiting for the result of the command id addressed to
// aggregate. It returns nil when the registry is full (the caller answers
// "pending" without waiting). The caller must call cancel when it stops
// waiting, whatever happened, and produced once the command is written.
func (ws *waiters) register(aggregate, command string) (w *waiter, cancel func()) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.n >= ws.maxWaiting {
		return nil, func() {}
	}
	k := waitKey{aggregate, command}
	w = &waiter{ch: make(chan *outcome, 1)}
	set := ws.waiting[k]
	if set == nil {
		set = map[*waiter]struct{}{}
		ws.waiting[k] = set
	}
	set[w] = struct{}{}
	ws.n++
	return w, func() { ws.remove(k, w) }
}

// produced tells w where its command was written; a result for that
// position that already arrived completes it.
func (ws *waiters) produced(w *waiter, partition int32, offset int64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w.at = strconv.FormatInt(int64(partition), 10) + "/" + strconv.FormatInt(offset, 10)
	if o, ok := w.early[w.at]; ok && !w.done {
		w.done = true
		w.ch <- o
	}
	w.early = nil
}

func (ws *waiters) remove(k waitKey, w *waiter) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	set := ws.waiting[k]
	if _, ok := set[w]; !ok {
		return
	}
	delete(set, w)
	ws.n--
	if len(set) == 0 {
		delete(ws.waiting, k)
	}
}

// complete delivers an outcome of the command id addressed to aggregate,
// answering the command record at position at ("" when unknown), to the
// waiters it answers.
func (ws *waiters) complete(aggregate, command, at string, o *outcome) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	k := waitKey{aggregate, command}
	set := ws.waiting[k]
	for w := range set {
		switch {
		case w.done:
		case at == "" || w.at == at:
			w.done = true
			w.ch <- o // buffered, and each waiter gets exactly one
		case w.at == "" && len(w.early) < maxEarly:
			if w.early == nil {
				w.early = map[string]*outcome{}
			}
			w.early[at] = o
		}
		if w.done {
			delete(set, w)
			ws.n--
		}
	}
	if len(set) == 0 {
		delete(ws.waiting, k)
	}
}

// count returns the registrations currently waiting.
func (ws *waiters) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.n
}
