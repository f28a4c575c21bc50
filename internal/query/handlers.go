package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/projection"
)

func writeParamError(w http.ResponseWriter, e *paramError) {
	ops.WriteJSON(w, http.StatusBadRequest, map[string]string{
		"error": CodeInvalidParameter, "parameter": e.param, "message": e.param + ": " + e.msg,
	})
}

func notFound(w http.ResponseWriter, format string, args ...any) {
	ops.WriteError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf(format, args...))
}

// storeError answers a failed read: 400 when the store refused an argument
// (validation here should have caught it first), else 503.
func (h *Handler) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, projection.ErrInvalidArgument) {
		ops.WriteError(w, http.StatusBadRequest, CodeInvalidParameter, err.Error())
		return
	}
	if errors.Is(err, projection.ErrOverflow) {
		// Never a silently wrapped total: narrow the range.
		ops.WriteError(w, http.StatusUnprocessableEntity, CodeOverflow, err.Error()+"; ask for a shorter range")
		return
	}
	if r.Context().Err() != nil {
		return // the client went away
	}
	h.cfg.Log.Warn("query: store read failed", "what", what, "path", r.URL.Path, "err", err)
	ops.WriteError(w, http.StatusServiceUnavailable, CodeUnavailable, what+" is unavailable; retry later")
}

// readCtx bounds the store reads of a request: StoreTimeout plus extra
// (a read-your-writes wait).
func (h *Handler) readCtx(r *http.Request, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.cfg.StoreTimeout+extra)
}

// account serves GET /v1/accounts/{id}[?min_version=N[&wait=D]].
func (h *Handler) account(w http.ResponseWriter, r *http.Request) {
	id, perr := pathID(r)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	q := r.URL.Query()
	minVersion, perr := intParam(q, "min_version", 0, 1, 1<<62)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	wait, hasWait, perr := durationParam(q, "wait", h.cfg.MaxWait)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	if hasWait && minVersion == 0 {
		writeParamError(w, badParam("wait", "only with min_version"))
		return
	}
	ctx, cancel := h.readCtx(r, wait)
	defer cancel()
	v, ok, err := h.cfg.Accounts.Account(ctx, id)
	if err != nil {
		h.storeError(w, r, "the account view", err)
		return
	}
	if minVersion > 0 && v.Version < minVersion && wait > 0 {
		v, ok, err = h.waitVersion(ctx, id, minVersion, wait, v, ok)
		if err != nil {
			h.storeError(w, r, "the account view", err)
			return
		}
	}
	switch {
	case minVersion > 0 && v.Version < minVersion:
		ops.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error":   CodeProjectionLagging,
			"message": fmt.Sprintf("the view has version %d of the account, not yet %d; retry", v.Version, minVersion),
			"version": v.Version,
		})
	case !ok:
		notFound(w, "account %s is unknown", clip(id))
	default:
		ops.WriteJSON(w, http.StatusOK, v)
	}
}

// waitVersion reads the account again when Changes says it changed, and
// every PollInterval, until its version is at least want, wait passes or
// ctx is done; it returns the last read (last, lastOK: the one before
// waiting).
func (h *Handler) waitVersion(ctx context.Context, id string, want int64, wait time.Duration,
	last projection.AccountView, lastOK bool) (projection.AccountView, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(h.cfg.PollInterval)
	defer t.Stop()
	var changed <-chan struct{}
	watch := func() {
		if h.cfg.Changes != nil {
			var stop func()
			changed, stop = h.cfg.Changes.Watch(id)
			context.AfterFunc(ctx, stop)
		}
	}
	// Watch before reading again, so that a change between the first read
	// and the watch is not missed.
	watch()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return last, lastOK, nil
			case <-t.C:
			case <-changed:
				watch()
			}
		}
		v, ok, err := h.cfg.Accounts.Account(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return last, lastOK, nil
			}
			return v, ok, err
		}
		last, lastOK = v, ok
		if v.Version >= want {
			return v, ok, nil
		}
	}
}

// known reports whether the hot view knows account id (for 404s of readers
// that cannot tell "unknown" from "empty").
func (h *Handler) known(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) bool {
	_, ok, err := h.cfg.Accounts.Account(ctx, id)
	if err != nil {
		h.storeError(w, r, "the account view", err)
		return false
	}
	if !ok {
		notFound(w, "account %s is unknown", clip(id))
	}
	return ok
}

// transactions serves GET /v1/accounts/{id}/transactions?limit=.
func (h *Handler) transactions(w http.ResponseWriter, r *http.Request) {
	id, perr := pathID(r)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	limit, perr := intParam(r.URL.Query(), "limit", DefaultTxLimit, 1, MaxTxLimit)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	ctx, cancel := h.readCtx(r, 0)
	defer cancel()
	txs, err := h.cfg.Transactions.RecentTransactions(ctx, id, int(limit))
	if err != nil {
		h.storeError(w, r, "the transaction view", err)
		return
	}
	if len(txs) == 0 && !h.known(ctx, w, r, id) {
		return
	}
	if txs == nil {
		txs = []projection.TxView{}
	}
	ops.WriteJSON(w, http.StatusOK, map[string]any{"account_id": id, "transactions": txs})
}

// history serves GET /v1/accounts/{id}/history?from=&to=&cursor=&limit=.
func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	id, perr := pathID(r)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	q := r.URL.Query()
	from, to, perr := rangeParams(q, false)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	rawCursor, _, perr := single(q, "cursor")
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	cursor, perr := decodeCursor(rawCursor)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	limit, perr := intParam(q, "limit", DefaultHistoryLimit, 1, MaxHistoryLimit)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	ctx, cancel := h.readCtx(r, 0)
	defer cancel()
	rows, next, err := h.cfg.History.History(ctx, id, from, to, cursor, int(limit))
	if err != nil {
		h.storeError(w, r, "the history store", err)
		return
	}
	if len(rows) == 0 && cursor == "" && !h.known(ctx, w, r, id) {
		return
	}
	if rows == nil {
		rows = []projection.EventRow{}
	}
	ops.WriteJSON(w, http.StatusOK, map[string]any{"account_id": id, "events": rows, "next_cursor": encodeCursor(next)})
}

// balanceAt serves GET /v1/accounts/{id}/balance-at?ts=.
func (h *Handler) balanceAt(w http.ResponseWriter, r *http.Request) {
	id, perr := pathID(r)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	ts, perr := timeParam(r.URL.Query(), "ts", true)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	ctx, cancel := h.readCtx(r, 0)
	defer cancel()
	balance, version, ok, err := h.cfg.History.BalanceAt(ctx, id, ts)
	if err != nil {
		h.storeError(w, r, "the history store", err)
		return
	}
	if !ok {
		if h.known(ctx, w, r, id) {
			notFound(w, "account %s has no event at or before %s", clip(id), ts.Format(time.RFC3339Nano))
		}
		return
	}
	ops.WriteJSON(w, http.StatusOK, map[string]any{"account_id": id, "ts": ts, "balance": balance, "version": version})
}

// transfer serves GET /v1/transfers/{id}.
func (h *Handler) transfer(w http.ResponseWriter, r *http.Request) {
	id, perr := pathID(r)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	ctx, cancel := h.readCtx(r, 0)
	defer cancel()
	v, ok, err := h.cfg.Transfers.Transfer(ctx, id)
	if err != nil {
		h.storeError(w, r, "the transfer view", err)
		return
	}
	if !ok {
		notFound(w, "transfer %s is unknown", clip(id))
		return
	}
	ops.WriteJSON(w, http.StatusOK, v)
}

// command serves GET /v1/commands/{id}[?account_id=]: the outcome, or
// status "unknown" when none is known (not processed yet, never sent, or
// expired). With account_id, the outcome of the id for that account; 409
// idempotency_key_reused when the id was used for another account only.
func (h *Handler) command(w http.ResponseWriter, r *http.Request) {
	id, perr := pathID(r)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	account, _, perr := single(r.URL.Query(), "account_id")
	if perr == nil && account != "" {
		perr = checkID("account_id", account)
	}
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	ctx, cancel := h.readCtx(r, 0)
	defer cancel()
	o, ok, err := h.cfg.Outcomes.CommandOutcome(ctx, id, account)
	if err != nil {
		h.storeError(w, r, "the outcome view", err)
		return
	}
	if !ok {
		ops.WriteJSON(w, http.StatusOK, map[string]string{"command_id": id, "status": "unknown"})
		return
	}
	if account != "" && o.AggregateID != account {
		ops.WriteJSON(w, http.StatusConflict, map[string]string{"error": "idempotency_key_reused",
			"message": fmt.Sprintf("command id %q was first used for another account; its outcome is not this account's", clip(id))})
		return
	}
	o.Status = strings.ToLower(o.Status)
	ops.WriteJSON(w, http.StatusOK, o)
}

// summary serves GET /v1/analytics/summary?from=&to=.
func (h *Handler) summary(w http.ResponseWriter, r *http.Request) {
	from, to, perr := rangeParams(r.URL.Query(), true)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	ctx, cancel := h.readCtx(r, 0)
	defer cancel()
	s, err := h.cfg.Analytics.Summary(ctx, from, to)
	if err != nil {
		h.storeError(w, r, "the analytics store", err)
		return
	}
	if s == nil {
		s = []projection.CurrencySummary{}
	}
	ops.WriteJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "currencies": s})
}

var countMetrics = map[string]bool{"events": true, "deposit_count": true, "withdrawal_count": true, "transfer_count": true}

// timeseries serves GET /v1/analytics/timeseries?metric=&interval=&from=&to=&currency=.
func (h *Handler) timeseries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	metric, _, perr := single(q, "metric")
	if perr == nil && !slices.Contains(projection.Metrics(), metric) {
		perr = badParam("metric", "%s: want one of %s", clip(metric), strings.Join(projection.Metrics(), ", "))
	}
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	interval, hasInterval, perr := durationParam(q, "interval", MaxRange)
	if perr == nil && !hasInterval {
		interval = time.Hour
	}
	if perr == nil && (interval < time.Hour || interval%time.Hour != 0) {
		perr = badParam("interval", "%s: want a whole number of hours (1h, 6h, 24h, …)", interval)
	}
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	from, to, perr := rangeParams(q, true)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	currency, _, perr := single(q, "currency")
	switch {
	case perr != nil:
	case currency == "" && !countMetrics[metric]:
		perr = badParam("currency", "required for metric %s (an ISO 4217 code such as EUR)", metric)
	case currency != "" && !domain.ValidCurrency(currency):
		perr = badParam("currency", "%s: want an ISO 4217 code such as EUR", clip(currency))
	}
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	ctx, cancel := h.readCtx(r, 0)
	defer cancel()
	pts, err := h.cfg.Analytics.TimeSeries(ctx, metric, interval, from, to, currency)
	if err != nil {
		h.storeError(w, r, "the analytics store", err)
		return
	}
	if pts == nil {
		pts = []projection.Point{}
	}
	ops.WriteJSON(w, http.StatusOK, map[string]any{
		"metric": metric, "interval": fmt.Sprintf("%dh", interval/time.Hour), "from": from, "to": to,
		"currency": currency, "points": pts,
	})
}

// topAccounts serves GET /v1/analytics/top-accounts?by=balance|volume&limit=.
func (h *Handler) topAccounts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	by, hasBy, perr := single(q, "by")
	if perr == nil && !hasBy {
		by = "balance"
	}
	if perr == nil && by != "balance" && by != "volume" {
		perr = badParam("by", "%s: want balance or volume", clip(by))
	}
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	limit, perr := intParam(q, "limit", DefaultTopLimit, 1, MaxTopLimit)
	if perr != nil {
		writeParamError(w, perr)
		return
	}
	ctx, cancel := h.readCtx(r, 0)
	defer cancel()
	rows, err := h.cfg.Analytics.TopAccounts(ctx, by, int(limit))
	if err != nil {
		h.storeError(w, r, "the analytics store", err)
		return
	}
	if rows == nil {
		rows = []projection.AccountRank{}
	}
	ops.WriteJSON(w, http.StatusOK, map[string]any{"by": by, "accounts": rows})
}
