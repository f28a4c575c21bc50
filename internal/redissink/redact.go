package redissink

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/projection"
)

var _ projection.Redactor = (*Sink)(nil)

// redactScript blanks the owner of an account hash that exists (KEYS[1]).
var redactScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
	redis.call('HSET', KEYS[1], 'owner', '')
end
return 0`)

// Redact implements projection.Redactor. Of what an erasure blanks, the
// Redis view holds only the owner, in the account hash (the recent
// transactions carry no reference, the outcomes no correlation id): it is
// blanked for every account among events that has a hash.
func (s *Sink) Redact(ctx context.Context, events []projection.Event) error {
	seen := map[string]bool{}
	for _, e := range events {
		if seen[e.AggregateID] {
			continue
		}
		seen[e.AggregateID] = true
		if err := redactScript.Run(ctx, s.rdb, []string{s.AccountKey(e.AggregateID)}).Err(); err != nil {
			return fmt.Errorf("redis: redact account %s: %w", e.AggregateID, err)
		}
	}
	return nil
}
