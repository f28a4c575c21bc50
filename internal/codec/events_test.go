package codec

import (
	"strings"
	"testing"
)

// TestEveryEventHasFacts: every event schema in schemas/ has its case in
// FactsOf, named after it; nothing else does.
func TestEveryEventHasFacts(t *testing.T) {
	c := catalog(t)
	for _, name := range c.Names() {
		v, _ := NewValue(name)
		f, ok := FactsOf(v)
		isEvent := strings.HasPrefix(name, "ledger.events.")
		switch {
		case isEvent && !ok:
			t.Errorf("%s has no case in FactsOf: add one (events.go)", name)
		case !isEvent && ok:
			t.Errorf("%s is not an event, but FactsOf knows it", name)
		case ok && (f.Name != name || !strings.HasSuffix(name, "."+f.Short)):
			t.Errorf("FactsOf(%s) names it %s (%s)", name, f.Name, f.Short)
		}
	}
}

// TestFactsOfGoldenEvents: the facts of the golden records.
func TestFactsOfGoldenEvents(t *testing.T) {
	want := map[string]struct {
		money    bool
		amount   int64
		step     TransferStep
		open     bool
		close    bool
		currency string
	}{
		"ledger.events.AccountOpened":    {open: true, currency: "EUR"},
		"ledger.events.FundsDeposited":   {money: true, amount: 125_00, currency: "EUR"},
		"ledger.events.FundsWithdrawn":   {money: true, amount: -200_00, currency: "EUR"},
		"ledger.events.TransferDebited":  {money: true, amount: -20_00, step: TransferDebitedStep, currency: "EUR"},
		"ledger.events.TransferCredited": {money: true, amount: 20_00, step: TransferCreditedStep, currency: "EUR"},
		"ledger.events.TransferRefunded": {money: true, amount: 20_00, step: TransferRefundedStep, currency: "EUR"},
		"ledger.events.AccountClosed":    {close: true},
	}
	for _, v := range goldenValues() {
		f, ok := FactsOf(v)
		w, isEvent := want[fullName(v)]
		if ok != isEvent {
			t.Errorf("%s: FactsOf ok=%v", fullName(v), ok)
			continue
		}
		if ok && (f.Money != w.money || f.Amount != w.amount || f.Transfer != w.step || f.Open != w.open || f.Close != w.close || f.Currency != w.currency || f.EventID == "" || f.Version == 0) {
			t.Errorf("%s: %+v", fullName(v), f)
		}
	}
}
