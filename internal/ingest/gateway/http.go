package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/ops"
)

// handleOne serves POST /v1/commands.
func (g *Gateway) handleOne(w http.ResponseWriter, r *http.Request) {
	wait, ok := g.parseWait(w, r)
	if !ok {
		return
	}
	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	cmd, ferr := parseCommand(body, g.cfg.Now())
	if ferr != nil {
		g.m.commands.WithLabelValues("unknown", "invalid").Inc()
		ops.WriteJSON(w, http.StatusBadRequest, errorBody(ferr))
		return
	}
	it := &item{cmd: cmd}
	g.submit(r.Context(), []*item{it}, wait)
	switch {
	case it.invalid != nil:
		ops.WriteJSON(w, http.StatusBadRequest, errorBody(it.invalid))
	case it.produceErr != nil:
		ops.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error":      CodeKafkaUnavailable,
			"message":    "the command could not be written to Kafka; retry with the same command_id",
			"command_id": cmd.commandID,
		})
	default:
		status, body := reply(it)
		ops.WriteJSON(w, status, body)
	}
}

// handleBatch serves POST /v1/commands:batch.
func (g *Gateway) handleBatch(w http.ResponseWriter, r *http.Request) {
	wait, ok := g.parseWait(w, r)
	if !ok {
		return
	}
	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	raws, ferr := splitBatch(r.Header.Get("Content-Type"), body)
	if ferr != nil {
		ops.WriteJSON(w, http.StatusBadRequest, errorBody(ferr))
		return
	}
	if len(raws) > g.cfg.MaxBatch {
		ops.WriteError(w, http.StatusBadRequest, CodeBatchTooLarge,
			fmt.Sprintf("%d commands in one batch; at most %d", len(raws), g.cfg.MaxBatch))
		return
	}
	now := g.cfg.Now()
	items := make([]*item, len(raws))
	for i, raw := range raws {
		items[i] = &item{index: i}
		items[i].cmd, items[i].invalid = parseCommand(raw, now)
		if items[i].invalid != nil {
			g.m.commands.WithLabelValues("unknown", "invalid").Inc()
		}
	}
	g.submit(r.Context(), items, wait)

	results := make([]map[string]any, len(items))
	attempted, failed := 0, 0
	for i, it := range items {
		var res map[string]any
		switch {
		case it.invalid != nil:
			res = errorBody(it.invalid)
		case it.produceErr != nil:
			attempted++
			failed++
			res = map[string]any{
				"command_id": it.cmd.commandID,
				"error":      CodeKafkaUnavailable,
				"message":    "the command could not be written to Kafka; retry with the same command_id",
			}
		default:
			attempted++
			_, res = reply(it)
		}
		res["index"] = it.index
		results[i] = res
	}
	if attempted > 0 && failed == attempted {
		ops.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error":   CodeKafkaUnavailable,
			"message": "no command of the batch could be written to Kafka; retry with the same command ids",
			"results": results,
		})
		return
	}
	ops.WriteJSON(w, http.StatusOK, map[string]any{"results": results})
}

// reply is the status and body for a produced command: its outcome if it
// arrived in time, else pending.
func reply(it *item) (int, map[string]any) {
	o := it.out
	switch {
	case o == nil:
		return http.StatusAccepted, map[string]any{"command_id": it.cmd.commandID, "status": "pending"}
	case o.accepted:
		return http.StatusOK, map[string]any{
			"command_id": it.cmd.commandID,
			"status":     "accepted",
			"version":    o.version,
			"events":     o.events,
		}
	}
	status := http.StatusUnprocessableEntity
	if o.reason == string(domain.ReasonVersionConflict) {
		status = http.StatusConflict
	}
	return status, map[string]any{
		"command_id": it.cmd.commandID,
		"status":     "rejected",
		"reason":     o.reason,
		"message":    o.message,
		"version":    o.version,
	}
}

func errorBody(e *FieldError) map[string]any {
	b := map[string]any{"error": e.Code, "message": e.Message}
	if e.Field != "" {
		b["field"] = e.Field
	}
	return b
}

// parseWait reads ?wait=: absent means do not wait; otherwise a Go duration
// between 0 and MaxWait. On error it has answered 400.
func (g *Gateway) parseWait(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	q := r.URL.Query()
	if !q.Has("wait") {
		return 0, true
	}
	d, err := time.ParseDuration(q.Get("wait"))
	switch {
	case err != nil:
		ops.WriteError(w, http.StatusBadRequest, CodeInvalidWait, fmt.Sprintf("wait=%q: want a duration such as 5s or 500ms", domain.Clip(q.Get("wait"))))
		return 0, false
	case d < 0 || d > g.cfg.MaxWait:
		ops.WriteError(w, http.StatusBadRequest, CodeInvalidWait, fmt.Sprintf("wait=%s: want 0 to %s", d, g.cfg.MaxWait))
		return 0, false
	}
	return d, true
}

// readBody reads the whole body up to MaxBodyBytes. On error it has answered
// 413 or 400.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			ops.WriteError(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
				fmt.Sprintf("the body exceeds %d bytes", g.cfg.MaxBodyBytes))
			return nil, false
		}
		ops.WriteError(w, http.StatusBadRequest, CodeInvalidJSON, "reading the body: "+err.Error())
		return nil, false
	}
	return body, true
}

// ndjsonTypes are the media types that mark a body as NDJSON.
var ndjsonTypes = map[string]bool{
	"application/x-ndjson":     true,
	"application/ndjson":       true,
	"application/jsonl":        true,
	"application/x-jsonlines":  true,
	"application/jsonlines":    true,
	"application/x-json-lines": true,
}

// splitBatch cuts a batch body into its items: a JSON array, or NDJSON (one
// command per line, blank lines skipped) when the Content-Type says so or
// the body starts with '{'. Only an unreadable body is an error; a bad item
// is reported by parseCommand.
func splitBatch(contentType string, body []byte) ([]json.RawMessage, *FieldError) {
	mt, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, &FieldError{Code: CodeInvalidJSON, Message: "empty body; want a JSON array or NDJSON of commands"}
	}
	if !ndjsonTypes[mt] {
		switch trimmed[0] {
		case '[':
			var raws []json.RawMessage
			if err := json.Unmarshal(trimmed, &raws); err != nil {
				return nil, &FieldError{Code: CodeInvalidJSON, Message: "invalid JSON array: " + err.Error()}
			}
			return raws, nil
		case '{':
			// NDJSON without its Content-Type.
		default:
			return nil, &FieldError{Code: CodeInvalidJSON, Message: "want a JSON array of commands or NDJSON (one command object per line)"}
		}
	}
	var raws []json.RawMessage
	for line := range bytes.SplitSeq(trimmed, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			raws = append(raws, json.RawMessage(line))
		}
	}
	return raws, nil
}
