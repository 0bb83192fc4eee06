// Package jifu holds the platform's shared domain vocabulary: the one coded
// error type every package returns at its edges.
//
// Codes are stable strings that outside parties (developers' servers, the CLI,
// the portal) may depend on; messages are safe to show to a user. Each edge maps
// codes to its own form in one place (HTTP statuses in package web, process exit
// codes in cmd/jifu).
//
//	return jifu.Errorf(jifu.CodeInvalid, "manifest: scope %q is unknown", s)
//	if jifu.ErrorCode(err) == jifu.CodeNotFound { ... }
package jifu

import (
	"errors"
	"fmt"
	"strings"
)

// Stable error codes. Add new ones sparingly; never rename one.
const (
	CodeInvalid     = "invalid"     // malformed or semantically wrong input
	CodeNotFound    = "not_found"   // the thing asked for does not exist
	CodeConflict    = "conflict"    // state changed under the caller (CAS, duplicate)
	CodeDenied      = "denied"      // authenticated but not allowed (scope, consent)
	CodeTooLarge    = "too_large"   // a request, response or module over its limit
	CodeLimit       = "limit"       // a per-invocation limit hit (host calls, memory)
	CodeTimeout     = "timeout"     // a deadline passed
	CodeGuestFault  = "guest_fault" // the app's module trapped, panicked or broke the ABI
	CodeUnavailable = "unavailable" // a dependency is down or not ready; retry later
	CodeInternal    = "internal"    // a bug or an unexpected failure on our side
)

// Error is the platform's error value: a stable Code, a user-safe Message, and
// optionally the underlying cause (never shown to users, kept for logs).
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil && !strings.Contains(e.Message, e.Err.Error()) {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message. A %w verb
// in the format keeps the wrapped error reachable through errors.Is/As.
func Errorf(code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	e := &Error{Code: code, Message: err.Error()}
	if errors.Unwrap(err) != nil {
		e.Err = errors.Unwrap(err)
	}
	return e
}

// ErrorCode returns the code of the first *Error in err's chain, CodeInternal
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the user-safe message of the first *Error in err's chain,
// or a generic message for any other error (whose text may hold internals).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
