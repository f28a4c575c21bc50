package query

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cqrs-ledger/ledger/internal/domain"
)

// Error codes of the query API (the "error" member of an error body).
const (
	CodeInvalidParameter  = "invalid_parameter"  // 400, with "parameter"
	CodeNotFound          = "not_found"          // 404
	CodeMethodNotAllowed  = "method_not_allowed" // 405
	CodeProjectionLagging = "projection_lagging" // 503, with "version"
	CodeUnavailable       = "unavailable"        // 503: a store failed
	CodeOverflow          = "overflow"           // 422: a total beyond a 64-bit integer
)

// paramError is a parameter the API refuses; it becomes a 400.
type paramError struct {
	param string
	msg   string
}

func (e *paramError) Error() string { return e.param + ": " + e.msg }

func badParam(param, format string, args ...any) *paramError {
	return &paramError{param: param, msg: fmt.Sprintf(format, args...)}
}

// clip quotes user input for a message, cut by domain.Clip; the quoting
// escapes control characters so nothing raw is echoed back.
func clip(s string) string { return strconv.Quote(domain.Clip(s)) }

// pathID is the {id} path value: 1..MaxIDBytes bytes of valid UTF-8
// without control characters. Ids are otherwise opaque (the write side
// accepts any non-blank string).
func pathID(r *http.Request) (string, *paramError) {
	id := r.PathValue("id")
	if perr := checkID("id", id); perr != nil {
		return "", perr
	}
	return id, nil
}

// checkID applies the domain's id bounds (domain.CheckID) to the parameter
// name.
func checkID(name, id string) *paramError {
	if b := domain.CheckID(name, id); b != nil {
		return badParam(name, "%s", b.Message)
	}
	return nil
}

// single returns the one value of name; present is false when absent. A
// repeated parameter is refused rather than silently picking one.
func single(q url.Values, name string) (v string, present bool, err *paramError) {
	vs, ok := q[name]
	if !ok {
		return "", false, nil
	}
	if len(vs) != 1 {
		return "", true, badParam(name, "given %d times; give it once", len(vs))
	}
	return vs[0], true, nil
}

// intParam reads an integer in [lo, hi]; def when absent.
func intParam(q url.Values, name string, def, lo, hi int64) (int64, *paramError) {
	s, ok, perr := single(q, name)
	if perr != nil || !ok {
		return def, perr
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badParam(name, "%s: want an integer from %d to %d", clip(s), lo, hi)
	}
	return n, nil
}

// timeParam reads an RFC 3339 time; zero when absent and not required.
func timeParam(q url.Values, name string, required bool) (time.Time, *paramError) {
	s, ok, perr := single(q, name)
	if perr != nil {
		return time.Time{}, perr
	}
	if !ok || s == "" {
		if required {
			return time.Time{}, badParam(name, "required: an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badParam(name, "%s: want an RFC 3339 time such as 2026-01-02T15:04:05Z", clip(s))
	}
	if t.Year() < 1970 || t.Year() > 2105 { // what ClickHouse DateTime holds
		return time.Time{}, badParam(name, "%s: want a time between 1970 and 2105", clip(s))
	}
	return t.UTC(), nil
}

// rangeParams reads from and to: from < to and to − from ≤ MaxRange when
// both are present.
func rangeParams(q url.Values, required bool) (from, to time.Time, perr *paramError) {
	if from, perr = timeParam(q, "from", required); perr != nil {
		return
	}
	if to, perr = timeParam(q, "to", required); perr != nil {
		return
	}
	if from.IsZero() || to.IsZero() {
		return
	}
	if !from.Before(to) {
		return from, to, badParam("to", "must be after from")
	}
	if to.Sub(from) > MaxRange {
		return from, to, badParam("to", "the range from..to spans %s; at most 366 days", to.Sub(from).Round(time.Hour))
	}
	return
}

// durationParam reads a Go duration in [0, max]; present is false when absent.
func durationParam(q url.Values, name string, max time.Duration) (d time.Duration, present bool, perr *paramError) {
	s, ok, perr := single(q, name)
	if perr != nil || !ok {
		return 0, ok, perr
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > max {
		return 0, true, badParam(name, "%s: want a duration such as 500ms or 2s, at most %s", clip(s), max)
	}
	return d, true, nil
}

// History cursors are opaque to clients: "h1" + the store's cursor (a
// decimal version), base64url. Anything else is refused before the store.
const cursorTag = "h1:"

func encodeCursor(store string) string {
	if store == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(cursorTag + store))
}

func decodeCursor(s string) (string, *paramError) {
	if s == "" {
		return "", nil
	}
	bad := badParam("cursor", "%s: not a cursor this API returned (use next_cursor of the previous page)", clip(s))
	if len(s) > 64 {
		return "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", bad
	}
	v, ok := strings.CutPrefix(string(raw), cursorTag)
	if !ok {
		return "", bad
	}
	if n, err := strconv.ParseUint(v, 10, 63); err != nil || n == 0 || strconv.FormatUint(n, 10) != v {
		return "", bad
	}
	return v, nil
}
