package processor

import (
	"strconv"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
)

// firstOutcome is what the dedupe index keeps of a processed command: enough
// to answer a repeat with the first result without holding the result
// itself. It relies on two properties of the domain: an accepted command
// emits exactly the events of its type, with ids "<command id>/<n>" and the
// versions up to the result's version. 24 bytes per entry, plus the map's
// own overhead (about 20 more).
type firstOutcome struct {
	at      int64 // processed_at, Unix ms: when the entry expires from the window
	version int64
	cmdType uint8 // 1 + index in commandTypes; 0 when unknown
	reason  uint8 // 0 when accepted; else 1 + index in reasons
	events  uint8
}

var commandTypes = []string{
	domain.TypeOpenAccount, domain.TypeDepositFunds, domain.TypeWithdrawFunds, domain.TypeTransferFunds,
	domain.TypeCreditTransfer, domain.TypeRefundTransfer, domain.TypeCloseAccount,
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

var reasons = []domain.Reason{
	domain.ReasonInvalidCommand, domain.ReasonAccountNotFound, domain.ReasonAccountExists,
	domain.ReasonAccountClosed, domain.ReasonInsufficientFunds, domain.ReasonCurrencyMismatch,
	domain.ReasonBalanceNotZero, domain.ReasonVersionConflict, domain.ReasonSameAccount,
}

func indexOf[T comparable](xs []T, x T) uint8 {
	for i, v := range xs {
		if v == x {
			return uint8(i + 1)
		}
	}
	return 0
}

// summarize keeps what a repeat needs of res.
func summarize(res *codec.CommandResult) firstOutcome {
	o := firstOutcome{
		at:      res.ProcessedAt.UnixMilli(),
		version: res.Version,
		cmdType: indexOf(commandTypes, res.CommandType),
		events:  uint8(min(len(res.Events), 255)),
	}
	if res.Status != statusAccepted {
		o.reason = indexOf(reasons, domain.Reason(res.Reason))
		if o.reason == 0 {
			o.reason = indexOf(reasons, domain.ReasonInvalidCommand)
		}
	}
	return o
}

// result rebuilds the first result of a repeated command.
func (o firstOutcome) result(commandID, aggregateID, correlationID string) *codec.CommandResult {
	res := &codec.CommandResult{
		CommandID:     commandID,
		AggregateID:   aggregateID,
		CorrelationID: correlationID,
		Status:        statusAccepted,
		Version:       o.version,
		Events:        []codec.EventRef{},
		ProcessedAt:   time.UnixMilli(o.at).UTC(),
	}
	if o.cmdType > 0 {
		res.CommandType = commandTypes[o.cmdType-1]
	}
	if o.reason > 0 {
		res.Status = statusRejected
		res.Reason = string(reasons[o.reason-1])
		res.Message = "repeat of command " + commandID + ": this is its first outcome"
		return res
	}
	for n := 1; n <= int(o.events); n++ {
		res.Events = append(res.Events, codec.EventRef{
			EventID: commandID + "/" + strconv.Itoa(n),
			Type:    eventTypes[res.CommandType],
			Version: o.version - int64(o.events) + int64(n),
		})
	}
	return res
}
