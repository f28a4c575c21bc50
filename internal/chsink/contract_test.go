package chsink

import (
	"testing"

	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
)

// TestContract runs the suite every projection view passes.
func TestContract(t *testing.T) {
	projectiontest.Run(t, func(t *testing.T) projection.View {
		_, _, v := setup(t, 0)
		return v
	})
}
