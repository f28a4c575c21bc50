// Package domain is the pure core of the ledger: the Account aggregate, the
// commands it accepts, the events it emits and the rules between them.
//
// Everything here is a function of its arguments. There is no I/O, no clock
// (the only time is a command's IssuedAt, copied into its events' OccurredAt)
// and no randomness (event ids and saga command ids are derived from the
// command id), so deciding the same command against the same state always
// yields the same Decision, down to the last byte. That is what lets the
// aggregate processor replay a batch after a crash and write identical
// records, and what makes the rules cheap to test exhaustively.
//
// The write side runs, per command:
//
//	d := domain.Decide(state, cmd)       // events | rejection, plus saga commands
//	state = domain.Fold(state, d.Events) // apply what was decided
//	// persist d.Events, route d.Commands to their aggregates, record the outcome
//
// Money is an int64 count of minor units (cents) in the account's ISO-4217
// currency; there are no floats, and no arithmetic that can overflow silently.
//
// A transfer is a saga across two aggregates. TransferFunds is decided by the
// source, which emits TransferDebited and a CreditTransfer command for the
// destination. The destination emits TransferCredited, or rejects the credit
// and emits a RefundTransfer command back to the source, which always applies
// it (TransferRefunded), even when the source has been closed in between. While
// a transfer is between its debit and its credit or refund it is "in flight";
// money is conserved with in-flight amounts counted once.
//
// Commands and events are used through pointers: *OpenAccount implements
// Command and *FundsDeposited implements Event, and Decide returns events and
// saga commands as pointers.
package domain
