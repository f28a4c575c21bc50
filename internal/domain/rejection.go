package domain

// Reason is the stable, machine-readable cause of a rejection. The string
// values are part of the public contract (command-results, HTTP responses):
// never change an existing one.
type Reason string

// Rejection reasons.
const (
	// ReasonInvalidCommand: the command is malformed (a missing id, an amount
	// ≤ 0, a bad currency, an amount that would overflow a balance, ...); the
	// message names the field at fault.
	ReasonInvalidCommand Reason = "invalid_command"
	// ReasonAccountNotFound: the account was never opened.
	ReasonAccountNotFound Reason = "account_not_found"
	// ReasonAccountExists: OpenAccount on an account that was already opened
	// (open or closed; ids are never reused).
	ReasonAccountExists Reason = "account_exists"
	// ReasonAccountClosed: the account is closed.
	ReasonAccountClosed Reason = "account_closed"
	// ReasonInsufficientFunds: the debit would take the balance below
	// −overdraft_limit.
	ReasonInsufficientFunds Reason = "insufficient_funds"
	// ReasonCurrencyMismatch: a credit or refund in a currency other than the
	// account's.
	ReasonCurrencyMismatch Reason = "currency_mismatch"
	// ReasonBalanceNotZero: CloseAccount on an account with a non-zero balance.
	ReasonBalanceNotZero Reason = "balance_not_zero"
	// ReasonVersionConflict: the command's expected_version is not the
	// aggregate's current version.
	ReasonVersionConflict Reason = "version_conflict"
	// ReasonSameAccount: a transfer whose source and destination are the same.
	ReasonSameAccount Reason = "same_account"
)

// Outcomes that the processor gives a command without deciding it. Decide
// never returns them; they are here so that every stable reason string is
// defined in one place.
const (
	// ReasonIdempotencyKeyReused: the command id was already used for a
	// different request (another account, type or body). The first request's
	// outcome stands; this request is not applied.
	ReasonIdempotencyKeyReused Reason = "idempotency_key_reused"
	// ReasonDeadLettered: the command could not be processed (its outputs
	// would not fit the topics' record limits, its key does not match its
	// aggregate, ...) and was copied to the dead-letter topic, whose record
	// the message points at.
	ReasonDeadLettered Reason = "dead_lettered"
)

// Rejection is the outcome of a command that broke a rule. It is an error;
// callers branch on Reason (with errors.As, or errors.Is against a
// &Rejection{Reason: r}), never on Message, which is for humans.
type Rejection struct {
	Reason  Reason
	Message string
}

// Error returns "<reason>: <message>".
func (r *Rejection) Error() string {
	if r.Message == "" {
		return string(r.Reason)
	}
	return string(r.Reason) + ": " + r.Message
}

// Is reports whether target is a *Rejection with the same Reason, so that
// errors.Is(err, &Rejection{Reason: ReasonInsufficientFunds}) matches any
// insufficient-funds rejection whatever its message.
func (r *Rejection) Is(target error) bool {
	t, ok := target.(*Rejection)
	return ok && t != nil && r != nil && t.Reason == r.Reason
}
