// Package manifest parses and checks an app's manifest (jifu.json): who the app
// is, which scopes it asks for, which entry points it exports, the limits it
// runs under and the self-test requests the review runs.
//
// Parse never stops at the first mistake: it returns every problem it finds,
// each with a stable code, so a developer fixes them all in one round.
//
//	m, problems := manifest.Parse(data)
//	if len(problems) > 0 { /* show them */ }
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// FileName is the manifest's name beside an app's module.
const FileName = "jifu.json"

// MaxSize bounds a manifest file.
const MaxSize = 64 << 10

// Stable problem codes, shared with the host's module validation.
const (
	CodeSyntax        = "manifest_syntax"     // not JSON, unknown field, wrong type, too big
	CodeField         = "manifest_field"      // a required field missing or malformed
	CodeScopeUnknown  = "scope_unknown"       // a scope the platform does not offer
	CodeLimitRange    = "limit_out_of_range"  // a limit outside the host's bounds
	CodeEntryPoint    = "entry_point_unknown" // an entry point the ABI does not define
	CodeABIVersion    = "abi_unsupported"     // an ABI version the host does not run
	CodeImport        = "import_not_allowed"  // the module imports a function outside the allowlist
	CodeScopeMissing  = "scope_not_declared"  // the module imports a scoped function without the scope
	CodeExportMissing = "export_missing"      // a required export is absent or has the wrong type
	CodeModuleSize    = "module_too_large"    // the module exceeds the size limit
	CodeModuleInvalid = "module_invalid"      // the bytes are not a valid WebAssembly module
	CodeSelfTest      = "self_test_failed"    // a declared self-test request did not answer as expected
)

// Problem is one reason a manifest or module is refused.
type Problem struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Field != "" {
		return p.Code + " (" + p.Field + "): " + p.Message
	}
	return p.Code + ": " + p.Message
}

// Limits bound one invocation of the app. Zero values take the defaults.
type Limits struct {
	MemoryPages   uint32 `json:"memory_pages,omitempty"`   // 64 KiB wasm pages
	TimeoutMS     int    `json:"timeout_ms,omitempty"`     // wall clock per invocation
	HostCalls     int    `json:"host_calls,omitempty"`     // host function calls per invocation
	RequestBytes  int    `json:"request_bytes,omitempty"`  // encoded request size
	ResponseBytes int    `json:"response_bytes,omitempty"` // encoded response size
}

// Default and maximum limits. An app may ask for anything between 1 and the maximum.
var (
	DefaultLimits = Limits{MemoryPages: 512, TimeoutMS: 2000, HostCalls: 1000, RequestBytes: 1 << 20, ResponseBytes: 1 << 20}
	MaxLimits     = Limits{MemoryPages: 2048, TimeoutMS: 30000, HostCalls: 100000, RequestBytes: 8 << 20, ResponseBytes: 8 << 20}
)

// Timeout returns the wall-clock limit as a duration.
func (l Limits) Timeout() time.Duration { return time.Duration(l.TimeoutMS) * time.Millisecond }

// SelfTest is a request the review's sandbox run sends, and the status it expects.
type SelfTest struct {
	Method       string `json:"method"`
	Path         string `json:"path"`
	Body         string `json:"body,omitempty"`
	ExpectStatus int    `json:"expect_status"`
}

// Manifest describes one version of an app.
type Manifest struct {
	ABI         int               `json:"abi"`
	Slug        string            `json:"slug"`
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Description string            `json:"description,omitempty"`
	Category    string            `json:"category,omitempty"`
	Scopes      []string          `json:"scopes,omitempty"`
	EntryPoints []string          `json:"entry_points"`
	Limits      Limits            `json:"limits,omitzero"`
	Config      map[string]string `json:"config,omitempty"` // defaults; operators override per app
	SelfTest    []SelfTest        `json:"self_test,omitempty"`
}

// HasScope reports whether the manifest asks for scope.
func (m *Manifest) HasScope(scope string) bool { return slices.Contains(m.Scopes, scope) }

// HasEntryPoint reports whether the manifest declares the entry point.
func (m *Manifest) HasEntryPoint(name string) bool { return slices.Contains(m.EntryPoints, name) }

var (
	slugRE    = regexp.MustCompile(`^[a-z][a-z0-9-]{1,38}[a-z0-9]$`)
	versionRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})(-[0-9A-Za-z.-]{1,32})?$`)
	scopeRE   = regexp.MustCompile(`^[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)*$`)
	configRE  = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)
)

// EntryPoints the ABI defines.
var EntryPoints = []string{"handle_http", "on_event"}

// Parse decodes a manifest, fills default limits, and checks every field that
// does not depend on the host (scopes are checked against the host's registry
// by the host's validation). It returns the manifest (nil when the JSON cannot
// be read at all) and every problem found.
func Parse(data []byte) (*Manifest, []Problem) {
	if len(data) > MaxSize {
		return nil, []Problem{{Code: CodeSyntax, Message: fmt.Sprintf("manifest is %d bytes, at most %d", len(data), MaxSize)}}
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, []Problem{{Code: CodeSyntax, Message: err.Error()}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, []Problem{{Code: CodeSyntax, Message: "trailing data after the manifest object"}}
	}
	return &m, m.Check()
}

// Check validates the manifest's fields and fills default limits.
func (m *Manifest) Check() []Problem {
	var ps []Problem
	add := func(code, field, format string, args ...any) {
		ps = append(ps, Problem{Code: code, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if m.ABI != 1 {
		add(CodeABIVersion, "abi", "abi %d is not supported; this host runs abi 1", m.ABI)
	}
	if !slugRE.MatchString(m.Slug) {
		add(CodeField, "slug", "slug %q must be 3-40 characters of a-z, 0-9 and -, starting with a letter", m.Slug)
	}
	if n := len([]rune(strings.TrimSpace(m.Name))); n == 0 || n > 64 {
		add(CodeField, "name", "name must be 1-64 characters")
	}
	if !versionRE.MatchString(m.Version) {
		add(CodeField, "version", "version %q is not MAJOR.MINOR.PATCH", m.Version)
	}
	if len([]rune(m.Description)) > 2000 {
		add(CodeField, "description", "description is over 2000 characters")
	}
	seen := map[string]bool{}
	for i, s := range m.Scopes {
		field := fmt.Sprintf("scopes[%d]", i)
		switch {
		case !scopeRE.MatchString(s):
			add(CodeField, field, "scope %q is malformed", s)
		case seen[s]:
			add(CodeField, field, "scope %q is listed twice", s)
		}
		seen[s] = true
	}
	if len(m.EntryPoints) == 0 {
		add(CodeField, "entry_points", "at least one entry point is required (%s)", strings.Join(EntryPoints, ", "))
	}
	seenEP := map[string]bool{}
	for i, e := range m.EntryPoints {
		field := fmt.Sprintf("entry_points[%d]", i)
		switch {
		case !slices.Contains(EntryPoints, e):
			add(CodeEntryPoint, field, "entry point %q is not one of %s", e, strings.Join(EntryPoints, ", "))
		case seenEP[e]:
			add(CodeField, field, "entry point %q is listed twice", e)
		}
		seenEP[e] = true
	}
	ps = append(ps, m.Limits.check()...)
	m.Limits = m.Limits.withDefaults()
	for k, v := range m.Config {
		if !configRE.MatchString(k) {
			add(CodeField, "config."+k, "config key %q must match [a-z0-9_.-]{1,64}", k)
		}
		if len(v) > 64<<10 {
			add(CodeField, "config."+k, "config value is over 64 KiB")
		}
	}
	for i, st := range m.SelfTest {
		field := fmt.Sprintf("self_test[%d]", i)
		if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}, st.Method) {
			add(CodeField, field+".method", "method %q is not an HTTP method", st.Method)
		}
		if !strings.HasPrefix(st.Path, "/") {
			add(CodeField, field+".path", "path %q must start with /", st.Path)
		}
		if st.ExpectStatus < 100 || st.ExpectStatus > 599 {
			add(CodeField, field+".expect_status", "status %d outside 100..599", st.ExpectStatus)
		}
	}
	if len(m.SelfTest) > 0 && !m.HasEntryPoint("handle_http") {
		add(CodeField, "self_test", "self tests need the handle_http entry point")
	}
	return ps
}

func (l Limits) check() []Problem {
	var ps []Problem
	rangeCheck := func(field string, v, max int) {
		if v < 0 || v > max {
			ps = append(ps, Problem{Code: CodeLimitRange, Field: "limits." + field, Message: fmt.Sprintf("%d is outside 1..%d", v, max)})
		}
	}
	rangeCheck("memory_pages", int(l.MemoryPages), int(MaxLimits.MemoryPages))
	rangeCheck("timeout_ms", l.TimeoutMS, MaxLimits.TimeoutMS)
	rangeCheck("host_calls", l.HostCalls, MaxLimits.HostCalls)
	rangeCheck("request_bytes", l.RequestBytes, MaxLimits.RequestBytes)
	rangeCheck("response_bytes", l.ResponseBytes, MaxLimits.ResponseBytes)
	return ps
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MemoryPages > 0 && l.MemoryPages <= MaxLimits.MemoryPages {
		d.MemoryPages = l.MemoryPages
	}
	pick := func(v, def, max int) int {
		if v > 0 && v <= max {
			return v
		}
		return def
	}
	d.TimeoutMS = pick(l.TimeoutMS, d.TimeoutMS, MaxLimits.TimeoutMS)
	d.HostCalls = pick(l.HostCalls, d.HostCalls, MaxLimits.HostCalls)
	d.RequestBytes = pick(l.RequestBytes, d.RequestBytes, MaxLimits.RequestBytes)
	d.ResponseBytes = pick(l.ResponseBytes, d.ResponseBytes, MaxLimits.ResponseBytes)
	return d
}
