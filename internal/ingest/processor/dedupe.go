package processor

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
)

// firstOutcome is what the dedupe index keeps of a processed command id:
// enough to answer a repeat with the first result, and to tell a repeat
// from a different request under the same id, without holding the result
// itself. It relies on one property of the domain: an accepted command
// emits exactly the events of its type, with the versions up to the
// result's version and the ids EventID(aggregate, version). 40 bytes.
type firstOutcome struct {
	at      int64    // processed_at, Unix ms: when the entry expires from the window
	version int64    // the aggregate's version after the command
	request [16]byte // fingerprint of the first request; zero when unknown (a result written before fingerprints)
	cmdType uint8    // 1 + index in commandTypes; 0 when unknown
	reason  uint8    // 0 when accepted; else 1 + index in reasons
	events  uint8
}

// commandTypes and reasons are the codes of firstOutcome's fields, which
// are written to Kafka (HeaderDedupe): append only, never reorder.
var commandTypes = []string{
	domain.TypeOpenAccount, domain.TypeDepositFunds, domain.TypeWithdrawFunds, domain.TypeTransferFunds,
	domain.TypeCreditTransfer, domain.TypeRefundTransfer, domain.TypeCloseAccount,
}

var reasons = []domain.Reason{
	domain.ReasonInvalidCommand, domain.ReasonAccountNotFound, domain.ReasonAccountExists,
	domain.ReasonAccountClosed, domain.ReasonInsufficientFunds, domain.ReasonCurrencyMismatch,
	domain.ReasonBalanceNotZero, domain.ReasonVersionConflict, domain.ReasonSameAccount,
	domain.ReasonIdempotencyKeyReused, domain.ReasonDeadLettered,
}

// eventTypes is the event an accepted command of each type emits.
var eventTypes = map[string]string{
	domain.TypeOpenAccount:    domain.TypeAccountOpened,
	domain.TypeDepositFunds:   domain.TypeFundsDeposited,
	domain.TypeWithdrawFunds:  domain.TypeFundsWithdrawn,
	domain.TypeTransferFunds:  domain.TypeTransferDebited,
	domain.TypeCreditTransfer: domain.TypeTransferCredited,
	domain.TypeRefundTransfer: domain.TypeTransferRefunded,
	domain.TypeCloseAccount:   domain.TypeAccountClosed,
}

func indexOf[T comparable](xs []T, x T) uint8 {
	for i, v := range xs {
		if v == x {
			return uint8(i + 1)
		}
	}
	return 0
}

// summarize keeps what a repeat needs of res, the first outcome of the
// request fingerprinted request.
func summarize(res *codec.CommandResult, request [16]byte) firstOutcome {
	o := firstOutcome{
		at:      res.ProcessedAt.UnixMilli(),
		version: res.Version,
		request: request,
		cmdType: indexOf(commandTypes, res.CommandType),
		events:  uint8(min(len(res.Events), 255)),
	}
	if res.Status != codec.StatusAccepted {
		o.reason = indexOf(reasons, domain.Reason(res.Reason))
		if o.reason == 0 {
			o.reason = indexOf(reasons, domain.ReasonInvalidCommand)
		}
	}
	return o
}

// sameRequest reports whether a request fingerprinted request repeats the
// first one. A first outcome restored from a result written before
// fingerprints existed matches any request: it is answered as before.
func (o firstOutcome) sameRequest(request [16]byte) bool {
	return o.request == [16]byte{} || o.request == request
}

// result rebuilds the first result of a repeated command; aggregateID is
// the aggregate of the first request (a repeat has the same).
func (o firstOutcome) result(commandID, aggregateID, correlationID string) *codec.CommandResult {
	res := &codec.CommandResult{
		CommandID:     commandID,
		AggregateID:   aggregateID,
		CorrelationID: correlationID,
		Status:        codec.StatusAccepted,
		Version:       o.version,
		Events:        []codec.EventRef{},
		ProcessedAt:   time.UnixMilli(o.at).UTC(),
	}
	if o.cmdType > 0 {
		res.CommandType = commandTypes[o.cmdType-1]
	}
	if o.reason > 0 {
		res.Status = codec.StatusRejected
		res.Reason = string(reasons[o.reason-1])
		res.Message = "repeat of command " + commandID + ": this is its first outcome"
		return res
	}
	for n := 1; n <= int(o.events); n++ {
		v := o.version - int64(o.events) + int64(n)
		res.Events = append(res.Events, codec.EventRef{
			EventID: domain.EventID(aggregateID, v),
			Type:    eventTypes[res.CommandType],
			Version: v,
		})
	}
	return res
}

// The HeaderDedupe value: a format byte, then the first outcome's fields.
const (
	dedupeFormat = 1
	dedupeLen    = 1 + 8 + 8 + 16 + 3
)

// appendHeader appends o in the HeaderDedupe format.
func (o firstOutcome) appendHeader(b []byte) []byte {
	b = append(b, dedupeFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(o.at))
	b = binary.BigEndian.AppendUint64(b, uint64(o.version))
	b = append(b, o.request[:]...)
	return append(b, o.cmdType, o.reason, o.events)
}

var errDedupeHeader = errors.New("malformed dedupe header")

// parseDedupeHeader reads a HeaderDedupe value.
func parseDedupeHeader(b []byte) (firstOutcome, error) {
	if len(b) != dedupeLen || b[0] != dedupeFormat {
		return firstOutcome{}, errDedupeHeader
	}
	var o firstOutcome
	o.at = int64(binary.BigEndian.Uint64(b[1:]))
	o.version = int64(binary.BigEndian.Uint64(b[9:]))
	copy(o.request[:], b[17:33])
	o.cmdType, o.reason, o.events = b[33], b[34], b[35]
	if int(o.cmdType) > len(commandTypes) || int(o.reason) > len(reasons) {
		return firstOutcome{}, errDedupeHeader
	}
	return o, nil
}

// fingerprint identifies a request for the idempotency check: the command's
// type, aggregate, expected version and body, but not issued_at or
// correlation_id, which a client library may set anew on every retry.
// SHA-256 (truncated to 128 bits), so that nobody can make two different
// requests look the same.
func fingerprint(c domain.Command) [16]byte {
	var f fingerprinter
	f.str(c.Type())
	env := c.Env()
	f.str(env.AggregateID)
	if env.ExpectedVersion != nil {
		f.b = append(f.b, 1)
		f.int(*env.ExpectedVersion)
	} else {
		f.b = append(f.b, 0)
	}
	switch c := c.(type) {
	case *domain.OpenAccount:
		f.str(c.Owner)
		f.str(c.Currency)
		f.int(c.OverdraftLimit)
	case *domain.DepositFunds:
		f.int(c.Amount)
		f.str(c.Reference)
	case *domain.WithdrawFunds:
		f.int(c.Amount)
		f.str(c.Reference)
	case *domain.TransferFunds:
		f.transfer(c.TransferID, c.FromAccountID, c.ToAccountID, c.Amount)
		f.str(c.Reference)
	case *domain.CreditTransfer:
		f.transfer(c.TransferID, c.FromAccountID, c.ToAccountID, c.Amount)
		f.str(c.Currency)
	case *domain.RefundTransfer:
		f.transfer(c.TransferID, c.FromAccountID, c.ToAccountID, c.Amount)
		f.str(c.Currency)
		f.str(c.Reason)
	case *domain.CloseAccount:
	}
	sum := sha256.Sum256(f.b)
	var out [16]byte
	copy(out[:], sum[:16])
	return out
}

// fingerprinter builds an unambiguous encoding: every string is length
// prefixed.
type fingerprinter struct{ b []byte }

func (f *fingerprinter) str(s string) {
	f.b = binary.AppendUvarint(f.b, uint64(len(s)))
	f.b = append(f.b, s...)
}

func (f *fingerprinter) int(v int64) { f.b = binary.AppendVarint(f.b, v) }

// transfer appends the fields every transfer-family command starts with.
func (f *fingerprinter) transfer(id, from, to string, amount int64) {
	f.str(id)
	f.str(from)
	f.str(to)
	f.int(amount)
}

// index maps command ids to their first outcomes, in two id spaces: ids of
// upstream commands and ids of saga commands (which the processor makes
// itself, unique by construction), so that neither can shadow the other.
// It compares whole ids: Go's map hashes only to find the slot.
type index [2]map[string]firstOutcome

func newIndex(n int) index {
	return index{make(map[string]firstOutcome, n), make(map[string]firstOutcome)}
}

func space(saga bool) int {
	if saga {
		return 1
	}
	return 0
}

func (x index) get(id string, saga bool) (firstOutcome, bool) {
	o, ok := x[space(saga)][id]
	return o, ok
}

func (x index) put(id string, saga bool, o firstOutcome) { x[space(saga)][id] = o }

// putEarliest keeps the earliest of o and what id already has: every record
// under one id carries the same first outcome, but a result restored from
// before the dedupe header may not.
func (x index) putEarliest(id string, saga bool, o firstOutcome) {
	m := x[space(saga)]
	if prev, ok := m[id]; !ok || o.at < prev.at {
		m[id] = o
	}
}

// len returns the number of entries.
func (x index) len() int { return len(x[0]) + len(x[1]) }

// prune removes the entries processed before cutoff (Unix ms).
func (x index) prune(cutoff int64) {
	for _, m := range x {
		for id, o := range m {
			if o.at < cutoff {
				delete(m, id)
			}
		}
	}
}

// merge copies every entry of y into x.
func (x index) merge(y index) {
	for i, m := range y {
		for id, o := range m {
			x[i][id] = o
		}
	}
}
