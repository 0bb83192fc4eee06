package host

import (
	"github.com/jifu-open/jifu"
)

// Stable codes of invocation failures, carried in *jifu.Error. The HTTP layer
// maps them to statuses in one place (package web).
const (
	CodeRequestTooLarge  = "request_too_large"        // the encoded request exceeds the app's limit
	CodeTimeout          = "guest_timeout"            // the wall-clock limit passed; the guest was stopped
	CodeMemoryLimit      = "guest_memory_limit"       // the guest ran out of its memory pages
	CodeTrap             = "guest_trap"               // the guest trapped (unreachable, bad access, ...)
	CodePanic            = "guest_panic"              // the guest's language runtime panicked or exited
	CodeBadPointer       = "guest_bad_pointer"        // a host call or return value pointed outside guest memory
	CodeHostCallLimit    = "guest_host_call_limit"    // more host calls than the app's limit
	CodeResponseTooLarge = "guest_response_too_large" // the encoded response exceeds the app's limit
	CodeBadResponse      = "guest_bad_response"       // the response buffer does not decode
	CodeNoEntryPoint     = "entry_point_missing"      // the app does not provide the entry point called
	CodeAppClosed        = "app_closed"               // the app version was unloaded
)

func fault(code, format string, args ...any) *jifu.Error {
	return jifu.Errorf(code, format, args...)
}
