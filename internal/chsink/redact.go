package chsink

import (
	"context"
	"fmt"

	"github.com/cqrs-ledger/ledger/internal/projection"
)

var _ projection.Redactor = (*View)(nil)

// Redact implements projection.Redactor: it blanks the owner, reference and
// correlation id of the given events in ledger_events and the owner of
// their accounts in account_balances, with ALTER TABLE … UPDATE mutations
// (on a cluster, on the local tables of every server). ClickHouse applies a
// mutation to the parts that exist when it is created, in the background
// (system.mutations shows when it is done); it is recorded before the
// statement returns, so a restart does not lose it. The cached states of
// the accounts lose their owner too, so that later rows do not bring it
// back, and the view remembers the accounts (for as long as it lives) so
// that a state read back before the mutation is done is written without
// its owner.
func (v *View) Redact(ctx context.Context, events []projection.Event) error {
	var ids, accounts []string
	seen := map[string]bool{}
	for _, e := range events {
		ids = append(ids, e.EventID)
		if !seen[e.AggregateID] {
			seen[e.AggregateID] = true
			accounts = append(accounts, e.AggregateID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	stmts := []struct {
		table, set, key string
		in              []string
	}{
		{v.t.events, "owner = '', reference = '', correlation_id = ''", "event_id", ids},
		{v.t.balances, "owner = ''", "account_id", accounts},
	}
	for _, s := range stmts {
		q := "ALTER TABLE " + v.d.q(v.d.local(s.table)) + v.d.onCluster() + " UPDATE " + s.set + " WHERE " + s.key + " IN ?"
		for rest := s.in; len(rest) > 0; {
			n := nextChunk(rest, 10_000, 4)
			set := make([]any, n)
			for i, id := range rest[:n] {
				set[i] = id
			}
			rest = rest[n:]
			// A mutation fails in the background, not here, if its
			// condition does not hold for ClickHouse: GroupSet binds a
			// tuple, ('a', 'b'), which IN takes (a []string would bind
			// an array literal, which it does not).
			if err := v.conn.Exec(idQuery(ctx), q, groupSet(set)); err != nil {
				return fmt.Errorf("redact %s: %w", s.table, err)
			}
		}
	}
	for _, a := range accounts {
		v.erased[a] = true
		if st, ok := v.accounts[a]; ok {
			st.Owner = ""
			v.accounts[a] = st
		}
	}
	return nil
}
