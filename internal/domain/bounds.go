package domain

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Input bounds: one rule set for everything that enters the ledger, applied
// alike by the HTTP gateway (400 with the field), by the processor to
// records that direct Avro producers write (dead-lettered, with a rejected
// result) and by Decide, and by the query API to the ids it is asked for.
// They keep every accepted value storable and projectable: Redis views are
// JSON (years ≤ 9999), ClickHouse's DateTime ends in 2106 and its statements
// have a size limit, and a restore holds every id in memory.
const (
	// MaxIDBytes bounds command, account, transfer and correlation ids.
	// Saga command ids, which the processor derives from account ids, may
	// be longer (see EventID) and are not checked against it.
	MaxIDBytes = 128
	// MaxOwnerBytes bounds an account's owner.
	MaxOwnerBytes = 256
	// MaxReferenceBytes bounds a deposit's, withdrawal's or transfer's
	// free-text reference.
	MaxReferenceBytes = 512
	// MaxAmount bounds amounts and overdraft limits, in minor units: 10^15
	// (ten trillion units of a currency with two decimals). Sums of up to
	// 9,000 maximal amounts still fit in an int64.
	MaxAmount int64 = 1_000_000_000_000_000
)

// The range of issued_at (and so of every event's occurred_at): from the
// Unix epoch up to, not including, 2100-01-01 UTC.
var (
	MinIssuedAt = time.Unix(0, 0).UTC()
	MaxIssuedAt = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// BoundsError is a value outside the input bounds: Field is the JSON field
// at fault (command_id, account_id, amount, ...).
type BoundsError struct {
	Field, Message string
}

func (e *BoundsError) Error() string { return e.Field + ": " + e.Message }

func boundsErr(field, format string, args ...any) *BoundsError {
	return &BoundsError{field, fmt.Sprintf(format, args...)}
}

// CheckID checks an id: 1 to MaxIDBytes bytes of valid UTF-8, not blank,
// without control characters.
func CheckID(field, id string) *BoundsError {
	switch {
	case strings.TrimSpace(id) == "":
		return boundsErr(field, "must not be blank")
	case len(id) > MaxIDBytes:
		return boundsErr(field, "is %d bytes; at most %d", len(id), MaxIDBytes)
	case !utf8.ValidString(id):
		return boundsErr(field, "must be valid UTF-8")
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return boundsErr(field, "must not contain control characters")
	}
	return nil
}

// CheckText checks free text: at most max bytes of valid UTF-8 (it may be
// empty).
func CheckText(field, s string, max int) *BoundsError {
	switch {
	case len(s) > max:
		return boundsErr(field, "is %d bytes; at most %d", len(s), max)
	case !utf8.ValidString(s):
		return boundsErr(field, "must be valid UTF-8")
	}
	return nil
}

// CheckMoney checks an amount or limit against MaxAmount (its sign is the
// command's business, checked by Decide).
func CheckMoney(field string, v int64) *BoundsError {
	if v > MaxAmount || v < -MaxAmount {
		return boundsErr(field, "is %d; at most %d minor units", v, MaxAmount)
	}
	return nil
}

// CheckIssuedAt checks that t is in [MinIssuedAt, MaxIssuedAt).
func CheckIssuedAt(field string, t time.Time) *BoundsError {
	if t.Before(MinIssuedAt) || !t.Before(MaxIssuedAt) {
		return boundsErr(field, "%s is out of range [%s, %s)", t.UTC().Format(time.RFC3339Nano),
			MinIssuedAt.Format(time.RFC3339), MaxIssuedAt.Format(time.RFC3339))
	}
	return nil
}

// maxSagaIDBytes bounds the ids of internal (saga) commands, which the
// processor derives from account ids (see EventID) and may be longer than
// MaxIDBytes.
const maxSagaIDBytes = 4 * MaxIDBytes

// checkCommandField applies the id bounds of c's kind to one of its ids:
// CheckID for an upstream command, maxSagaIDBytes for an internal one.
func checkCommandField(c Command, field, v string) *BoundsError {
	if IsInternal(c) && v != "" {
		return CheckText(field, v, maxSagaIDBytes)
	}
	return CheckID(field, v)
}

// CheckCommandID applies the input bounds to c's command id alone (what
// may be remembered as an idempotency key).
func CheckCommandID(c Command) *BoundsError {
	return checkCommandField(c, "command_id", c.Env().CommandID)
}

// CheckBounds applies the input bounds to every field of c. An internal
// (saga) command's ids are the processor's own and only their shape is
// not checked against MaxIDBytes.
func CheckBounds(c Command) *BoundsError {
	env := c.Env()
	id := func(field, v string) *BoundsError { return checkCommandField(c, field, v) }
	optionalID := func(field, v string) *BoundsError {
		if v == "" {
			return nil
		}
		return id(field, v)
	}
	errs := []*BoundsError{
		CheckCommandID(c),
		id("account_id", env.AggregateID),
		optionalID("correlation_id", env.CorrelationID),
		CheckIssuedAt("issued_at", env.IssuedAt),
	}
	switch c := c.(type) {
	case *OpenAccount:
		errs = append(errs, CheckText("owner", c.Owner, MaxOwnerBytes), CheckText("currency", c.Currency, 3),
			CheckMoney("overdraft_limit", c.OverdraftLimit))
	case *DepositFunds:
		errs = append(errs, CheckMoney("amount", c.Amount), CheckText("reference", c.Reference, MaxReferenceBytes))
	case *WithdrawFunds:
		errs = append(errs, CheckMoney("amount", c.Amount), CheckText("reference", c.Reference, MaxReferenceBytes))
	case *TransferFunds:
		errs = append(errs, id("transfer_id", c.TransferID), id("from_account_id", c.FromAccountID), id("to_account_id", c.ToAccountID),
			CheckMoney("amount", c.Amount), CheckText("reference", c.Reference, MaxReferenceBytes))
	case *CreditTransfer:
		errs = append(errs, id("transfer_id", c.TransferID), id("from_account_id", c.FromAccountID), id("to_account_id", c.ToAccountID),
			CheckMoney("amount", c.Amount), CheckText("currency", c.Currency, 3))
	case *RefundTransfer:
		errs = append(errs, id("transfer_id", c.TransferID), id("from_account_id", c.FromAccountID), id("to_account_id", c.ToAccountID),
			CheckMoney("amount", c.Amount), CheckText("currency", c.Currency, 3), CheckText("reason", c.Reason, 64))
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
