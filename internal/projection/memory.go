package projection

import (
	"context"
	"sync"
)

// ApplyStats counts what a view did with the events it was given.
type ApplyStats struct {
	Applied, Duplicates, Gaps, Unknown int64
}

// Memory is an in-memory view: the reference implementation of the pure
// logic, for tests and tools. One writer at a time; readers may run
// concurrently with it.
type Memory struct {
	mu        sync.RWMutex
	accounts  map[string]AccountView
	txs       map[string][]TxView // newest first
	transfers map[string]TransferView
	outcomes  map[string]Outcome
	stats     ApplyStats
	// MaxTx bounds the recent transactions kept per account.
	MaxTx int
}

// NewMemory returns an empty in-memory view.
func NewMemory() *Memory {
	return &Memory{
		accounts:  map[string]AccountView{},
		txs:       map[string][]TxView{},
		transfers: map[string]TransferView{},
		outcomes:  map[string]Outcome{},
		MaxTx:     MaxRecentTransactions,
	}
}

// Name is "memory".
func (m *Memory) Name() string { return "memory" }

// Ping always succeeds.
func (m *Memory) Ping(context.Context) error { return nil }

// Apply applies every event whose version is the next one of its account.
func (m *Memory) Apply(_ context.Context, batch []Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range batch {
		if _, known := PatchOf(e); !known {
			m.stats.Unknown++
			continue
		}
		cur, ok := m.accounts[e.AggregateID]
		switch Guard(cur.Version, e.Version) {
		case Duplicate:
			m.stats.Duplicates++
		case Gap:
			m.stats.Gaps++
		}
		if next, applied := NextAccount(cur, ok, e); applied {
			m.stats.Applied++
			m.accounts[e.AggregateID] = next
			if p, _ := PatchOf(e); p.Tx != nil {
				l := append([]TxView{*p.Tx}, m.txs[e.AggregateID]...)
				if len(l) > m.MaxTx {
					l = l[:m.MaxTx]
				}
				m.txs[e.AggregateID] = l
			}
		}
		if t, ok := TransferOf(e); ok {
			cur, have := m.transfers[t.TransferID]
			if next, changed := NextTransfer(cur, have, e); changed {
				m.transfers[t.TransferID] = next
			}
		}
	}
	return nil
}

// ApplyOutcomes records command outcomes: the first outcome of a command id
// wins, and the first outcome of the id for each other account is kept
// beside it.
func (m *Memory) ApplyOutcomes(_ context.Context, batch []Outcome) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range batch {
		first, ok := m.outcomes[o.CommandID]
		switch {
		case !ok:
			m.outcomes[o.CommandID] = o
		case first.AggregateID != o.AggregateID:
			k := o.CommandID + "\x00" + o.AggregateID
			if _, ok := m.outcomes[k]; !ok {
				m.outcomes[k] = o
			}
		}
	}
	return nil
}

// Stats returns the counters since NewMemory.
func (m *Memory) Stats() ApplyStats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.stats
}

// Account returns the account with id.
func (m *Memory) Account(_ context.Context, id string) (AccountView, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v, ok := m.accounts[id]
	return v, ok, nil
}

// RecentTransactions returns up to limit transactions of the account, newest first.
func (m *Memory) RecentTransactions(_ context.Context, id string, limit int) ([]TxView, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	l := m.txs[id]
	if limit > 0 && len(l) > limit {
		l = l[:limit]
	}
	return append([]TxView(nil), l...), nil
}

// Transfer returns the transfer with id.
func (m *Memory) Transfer(_ context.Context, id string) (TransferView, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v, ok := m.transfers[id]
	return v, ok, nil
}

// CommandOutcome returns the outcome of the command with id; see
// OutcomeReader for account.
func (m *Memory) CommandOutcome(_ context.Context, id, account string) (Outcome, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v, ok := m.outcomes[id]
	if ok && account != "" && v.AggregateID != account {
		if other, ok := m.outcomes[id+"\x00"+account]; ok {
			return other, true, nil
		}
	}
	return v, ok, nil
}
