package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Avro full names of the commands, as returned by Command.Type and carried in
// command results.
const (
	TypeOpenAccount    = "ledger.commands.OpenAccount"
	TypeDepositFunds   = "ledger.commands.DepositFunds"
	TypeWithdrawFunds  = "ledger.commands.WithdrawFunds"
	TypeTransferFunds  = "ledger.commands.TransferFunds"
	TypeCreditTransfer = "ledger.commands.CreditTransfer"
	TypeRefundTransfer = "ledger.commands.RefundTransfer"
	TypeCloseAccount   = "ledger.commands.CloseAccount"
)

// Envelope is carried by every command.
type Envelope struct {
	// CommandID is the idempotency key (see the processor's doc for its
	// scope). Decide copies it into the events' command_id and causation_id
	// but derives no identity from it (see EventID). Ids ending in
	// "/credit" or "/refund" are reserved for saga commands (see
	// ReservedCommandID).
	CommandID string
	// AggregateID is the account the command is addressed to (the Kafka key).
	AggregateID string
	// CorrelationID ties one business flow together; copied verbatim into
	// the events and saga commands (it may be empty).
	CorrelationID string
	// ExpectedVersion, when set, must equal the aggregate's current version
	// or the command is rejected with version_conflict. 0 means "the account
	// must not exist yet". Nil means no check.
	ExpectedVersion *int64
	// IssuedAt is the only time the domain knows: it becomes OccurredAt of
	// the command's events. It must be set (non-zero).
	IssuedAt time.Time
}

// Env returns the envelope itself, so that commands embedding it satisfy
// Command through their pointer.
func (e *Envelope) Env() *Envelope { return e }

// Command is a request addressed to one aggregate. It is implemented by the
// pointer types *OpenAccount, *DepositFunds, *WithdrawFunds, *TransferFunds,
// *CreditTransfer, *RefundTransfer and *CloseAccount; Decide rejects any other
// implementation as invalid_command.
type Command interface {
	// Env returns the command's envelope (never nil for a non-nil command).
	Env() *Envelope
	// Type returns the Avro full name, e.g. "ledger.commands.OpenAccount".
	// It is safe to call on a nil pointer.
	Type() string
}

// OpenAccount opens the account AggregateID. Owner must be non-blank,
// Currency must match ^[A-Z]{3}$ and OverdraftLimit must be ≥ 0.
type OpenAccount struct {
	Envelope
	Owner          string
	Currency       string
	OverdraftLimit int64
}

// DepositFunds adds Amount (> 0, minor units of the account's currency) to an
// open account.
type DepositFunds struct {
	Envelope
	Amount    int64
	Reference string // free text from the issuer, copied into the event
}

// WithdrawFunds takes Amount (> 0) from an open account, as long as the
// balance stays ≥ −OverdraftLimit.
type WithdrawFunds struct {
	Envelope
	Amount    int64
	Reference string
}

// TransferFunds moves Amount (> 0) from FromAccountID to ToAccountID. It is
// addressed to the source: AggregateID must equal FromAccountID. The source
// debits itself (same funds rule as WithdrawFunds) and emits a CreditTransfer
// for the destination. Reference is not carried into the events (the
// TransferDebited schema has no such field).
type TransferFunds struct {
	Envelope
	TransferID    string
	FromAccountID string
	ToAccountID   string
	Amount        int64
	Reference     string
}

// CreditTransfer is an internal saga command, emitted by Decide on a
// TransferFunds and addressed to the destination (AggregateID =
// ToAccountID). Currency is the source's currency; the destination must be
// open and in the same currency, otherwise it answers with a RefundTransfer.
// Upstream systems must not be allowed to send it (it creates money).
type CreditTransfer struct {
	Envelope
	TransferID    string
	FromAccountID string
	ToAccountID   string
	Amount        int64
	Currency      string
}

// RefundTransfer is an internal saga command, emitted by Decide when a
// CreditTransfer is rejected and addressed to the source (AggregateID =
// FromAccountID). It gives the debited amount back and applies whatever the
// source's status, so money is never lost. Reason is the credit's rejection
// reason. Upstream systems must not be allowed to send it (it creates money).
type RefundTransfer struct {
	Envelope
	TransferID    string
	FromAccountID string
	ToAccountID   string
	Amount        int64
	Currency      string
	Reason        string
}

// CloseAccount closes an open account whose balance is zero. Closing is final.
type CloseAccount struct {
	Envelope
}

// Type implements Command.
func (*OpenAccount) Type() string { return TypeOpenAccount }

// Type implements Command.
func (*DepositFunds) Type() string { return TypeDepositFunds }

// Type implements Command.
func (*WithdrawFunds) Type() string { return TypeWithdrawFunds }

// Type implements Command.
func (*TransferFunds) Type() string { return TypeTransferFunds }

// Type implements Command.
func (*CreditTransfer) Type() string { return TypeCreditTransfer }

// Type implements Command.
func (*RefundTransfer) Type() string { return TypeRefundTransfer }

// Type implements Command.
func (*CloseAccount) Type() string { return TypeCloseAccount }

// Identities the domain makes itself are unique by construction and never
// derived from an id a client chose (a client can reuse or guess its own
// command ids, so anything derived from them could collide):
//
//   - an event's id is EventID(aggregate, version), "<aggregate id>/<version>",
//     the same string as its key on the events topic;
//   - the CreditTransfer of a transfer is "<id of its TransferDebited event>"
//   - CreditSuffix, so one debit has exactly one credit;
//   - the RefundTransfer of a rejected credit C is C + RefundSuffix.
const (
	CreditSuffix = "/credit"
	RefundSuffix = "/refund"
)

// ReservedCommandID reports whether id has a suffix reserved for saga command
// ids. Decide rejects upstream commands (every type but CreditTransfer and
// RefundTransfer) with such ids; because the dedupe by command id runs before
// Decide, whatever admits commands from outside (the gateway, and the
// processor for records produced directly to Kafka) must refuse them too, or
// an upstream "T/credit" would shadow the credit of transfer T.
func ReservedCommandID(id string) bool {
	return strings.HasSuffix(id, CreditSuffix) || strings.HasSuffix(id, RefundSuffix)
}

// ReservedCommandIDMessage says why an upstream command may not use id.
func ReservedCommandIDMessage(id string) string {
	return fmt.Sprintf("command_id %q: the suffixes %s and %s are reserved for saga commands", Clip(id), CreditSuffix, RefundSuffix)
}

// CurrencyPattern is the rule for currency codes: ISO 4217, three
// upper-case letters.
const CurrencyPattern = "^[A-Z]{3}$"

// ValidCurrency reports whether c matches CurrencyPattern.
func ValidCurrency(c string) bool {
	return len(c) == 3 && isUpper(c[0]) && isUpper(c[1]) && isUpper(c[2])
}

func isUpper(b byte) bool { return 'A' <= b && b <= 'Z' }

// Clip bounds user input quoted in a message: at most 64 bytes, cut at a
// character boundary, invalid UTF-8 replaced, "…" marking a cut. Callers
// quote it (%q) so that nothing raw is echoed back.
func Clip(s string) string {
	const n = 64
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// EventID is the id of the event at version of aggregate: unique by
// construction, since an aggregate has one event per version.
func EventID(aggregate string, version int64) string {
	return aggregate + "/" + strconv.FormatInt(version, 10)
}

// IsInternal reports whether c is a saga command (CreditTransfer or
// RefundTransfer), which only Decide may issue: admitting one from an
// upstream system would let it create money.
func IsInternal(c Command) bool {
	switch c.(type) {
	case *CreditTransfer, *RefundTransfer:
		return true
	}
	return false
}
