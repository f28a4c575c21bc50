// Package loadgen drives the ledger over its public HTTP APIs, as an upstream
// system and a reader would: it posts commands to the ingest gateway and
// reads the results back through the query API. The demo and the load tool
// (cmd/ledgerload) are built on it.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
)

// Client talks to the ingest gateway and the query API.
type Client struct {
	IngestURL string // e.g. http://127.0.0.1:8080
	QueryURL  string // e.g. http://127.0.0.1:8082
	Tokens    Tokens
	HTTP      *http.Client
}

// Tokens are the bearer tokens a Client sends: a write token to the ingest
// gateway, a read token to the query API; an empty one is not sent.
type Tokens struct {
	Write, Read string
}

// NewClient returns a client with pooled connections sized for concurrency.
func NewClient(ingest, query string, tokens Tokens, concurrency int) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency * 2
	tr.MaxConnsPerHost = concurrency * 2
	return &Client{IngestURL: strings.TrimRight(ingest, "/"), QueryURL: strings.TrimRight(query, "/"), Tokens: tokens,
		HTTP: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// Outcome is the gateway's answer to a command.
type Outcome struct {
	Status  int    // HTTP status
	Result  string `json:"status"` // accepted | rejected | pending
	Reason  string `json:"reason"`
	Version int64  `json:"version"`
	Error   string `json:"error"`
}

// JSON maps a workload command (a codec command) to the gateway's JSON shape.
func JSON(v any) (map[string]any, error) {
	switch c := v.(type) {
	case *codec.OpenAccount:
		return map[string]any{"type": "OpenAccount", "command_id": c.CommandID, "account_id": c.AggregateID,
			"owner": c.Owner, "currency": c.Currency, "overdraft_limit": c.OverdraftLimit}, nil
	case *codec.DepositFunds:
		return map[string]any{"type": "DepositFunds", "command_id": c.CommandID, "account_id": c.AggregateID,
			"amount": c.Amount, "reference": c.Reference}, nil
	case *codec.WithdrawFunds:
		return map[string]any{"type": "WithdrawFunds", "command_id": c.CommandID, "account_id": c.AggregateID,
			"amount": c.Amount, "reference": c.Reference}, nil
	case *codec.TransferFunds:
		return map[string]any{"type": "TransferFunds", "command_id": c.CommandID, "transfer_id": c.TransferID,
			"from_account_id": c.FromAccountID, "to_account_id": c.ToAccountID, "amount": c.Amount}, nil
	case *codec.CloseAccount:
		return map[string]any{"type": "CloseAccount", "command_id": c.CommandID, "account_id": c.AggregateID}, nil
	}
	return nil, fmt.Errorf("loadgen: %T is not an upstream command", v)
}

func (c *Client) do(ctx context.Context, method, u, token string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: status %d, body not JSON: %.200s", method, u, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, nil
}

// Send posts one command and waits up to wait for its outcome.
func (c *Client) Send(ctx context.Context, cmd map[string]any, wait time.Duration) (Outcome, error) {
	var o Outcome
	u := c.IngestURL + "/v1/commands"
	if wait > 0 {
		u += "?wait=" + wait.String()
	}
	code, err := c.do(ctx, http.MethodPost, u, c.Tokens.Write, cmd, &o)
	o.Status = code
	return o, err
}

// Get reads a query API path into out and returns the status.
func (c *Client) Get(ctx context.Context, path string, query url.Values, out any) (int, error) {
	u := c.QueryURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return c.do(ctx, http.MethodGet, u, c.Tokens.Read, nil, out)
}

// WaitVisible asks the query API for the account at version ≥ v, waiting up
// to wait on the server; ok is false if the view did not get there.
func (c *Client) WaitVisible(ctx context.Context, account string, v int64, wait time.Duration) (bool, error) {
	var out map[string]any
	code, err := c.Get(ctx, "/v1/accounts/"+url.PathEscape(account), url.Values{
		"min_version": {fmt.Sprint(v)}, "wait": {wait.String()}}, &out)
	if err != nil {
		return false, err
	}
	return code == http.StatusOK, nil
}

// Latencies collects durations and reports percentiles.
type Latencies struct{ d []time.Duration }

// Add records one duration.
func (l *Latencies) Add(d time.Duration) { l.d = append(l.d, d) }

// Len is the number recorded.
func (l *Latencies) Len() int { return len(l.d) }

// Percentile returns the p-th percentile (0..100), 0 when empty.
func (l *Latencies) Percentile(p float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}
