package redissink

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watcher implements projection.ChangeWatcher over the sinks' change
// announcements (ChangesChannel) of every generation under a prefix, with
// one subscription per process. Run it with Run.
type Watcher struct {
	rdb     redis.UniversalClient
	pattern string // the prefix, escaped for PSUBSCRIBE

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
}

// NewWatcher watches the generations under prefix (the readers' base prefix).
func NewWatcher(rdb redis.UniversalClient, prefix string) *Watcher {
	return &Watcher{rdb: rdb, pattern: globEscape(prefix), waiters: map[string]map[chan struct{}]struct{}{}}
}

// globEscape escapes the characters PSUBSCRIBE patterns treat specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// patterns are the channels of every generation under the prefix:
// <prefix>changes and <prefix>g<N>:changes.
func (w *Watcher) patterns() []string {
	return []string{w.pattern + "changes", w.pattern + "g*:changes"}
}

// Watch implements projection.ChangeWatcher.
func (w *Watcher) Watch(accountID string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	set := w.waiters[accountID]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		w.waiters[accountID] = set
	}
	set[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if set, ok := w.waiters[accountID]; ok {
			if _, waiting := set[ch]; waiting {
				delete(set, ch)
				close(ch)
			}
			if len(set) == 0 {
				delete(w.waiters, accountID)
			}
		}
	}
}

// wake closes the channels of the accounts in ids; nil ids wakes everyone
// (the subscription was lost, changes may have been missed).
func (w *Watcher) wake(ids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ids == nil {
		for id, set := range w.waiters {
			for ch := range set {
				close(ch)
			}
			delete(w.waiters, id)
		}
		return
	}
	for _, id := range ids {
		for ch := range w.waiters[id] {
			close(ch)
		}
		delete(w.waiters, id)
	}
}

// Run listens until ctx ends. go-redis subscribes again by itself after a
// lost connection; what was announced meanwhile is missed, and the waiters'
// own polling covers it.
func (w *Watcher) Run(ctx context.Context) error {
	ps := w.rdb.PSubscribe(ctx, w.patterns()...)
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer ps.Close()
	for msg := range ps.Channel(redis.WithChannelHealthCheckInterval(10 * time.Second)) {
		w.wake(strings.Split(strings.TrimSuffix(msg.Payload, "\n"), "\n"))
	}
	return nil
}
