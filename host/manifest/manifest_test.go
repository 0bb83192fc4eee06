package manifest

import (
	"slices"
	"strings"
	"testing"
)

const good = `{"abi":1,"slug":"hello","name":"Hello","version":"1.2.3","scopes":["storage"],
"entry_points":["handle_http"],"limits":{"timeout_ms":500},"config":{"greeting":"hi"},
"self_test":[{"method":"GET","path":"/","expect_status":200}]}`

func TestParseGood(t *testing.T) {
	m, ps := Parse([]byte(good))
	if len(ps) != 0 {
		t.Fatalf("problems: %v", ps)
	}
	if m.Limits.TimeoutMS != 500 || m.Limits.MemoryPages != DefaultLimits.MemoryPages || m.Limits.HostCalls != DefaultLimits.HostCalls {
		t.Fatalf("limits not defaulted: %+v", m.Limits)
	}
	if !m.HasScope("storage") || m.HasScope("kv") || !m.HasEntryPoint("handle_http") {
		t.Fatal("HasScope/HasEntryPoint wrong")
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		codes []string // every code expected, in order
	}{
		{"not json", `{`, []string{CodeSyntax}},
		{"unknown field", `{"abi":1,"slugg":"x"}`, []string{CodeSyntax}},
		{"trailing", good + `{}`, []string{CodeSyntax}},
		{"wrong type", `{"abi":"1"}`, []string{CodeSyntax}},
		{"too big", `{"description":"` + strings.Repeat("x", MaxSize) + `"}`, []string{CodeSyntax}},
		{"all wrong", `{"abi":2,"slug":"Hello!","name":"","version":"1.0","scopes":["Bad Scope","storage","storage"],
			"entry_points":["main"],"limits":{"memory_pages":99999,"timeout_ms":-1},"config":{"BAD":"x"},
			"self_test":[{"method":"FETCH","path":"x","expect_status":700}]}`,
			[]string{CodeABIVersion, CodeField, CodeField, CodeField, CodeField, CodeField, CodeEntryPoint,
				CodeLimitRange, CodeLimitRange, CodeField, CodeField, CodeField, CodeField, CodeField}},
		{"no entry points", `{"abi":1,"slug":"abc","name":"A","version":"0.1.0","entry_points":[]}`, []string{CodeField}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := Parse([]byte(tt.in))
			var got []string
			for _, p := range ps {
				got = append(got, p.Code)
				if p.Message == "" {
					t.Errorf("problem without message: %+v", p)
				}
			}
			if !slices.Equal(got, tt.codes) {
				t.Fatalf("codes = %v, want %v\nproblems: %v", got, tt.codes, ps)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"abi":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ps := Parse(data)
		if m == nil && len(ps) == 0 {
			t.Fatal("nil manifest without a problem")
		}
		if m != nil && len(ps) == 0 {
			// A clean manifest must be within bounds after defaults.
			l := m.Limits
			if l.MemoryPages == 0 || l.MemoryPages > MaxLimits.MemoryPages || l.TimeoutMS <= 0 || l.HostCalls <= 0 {
				t.Fatalf("clean manifest with bad limits: %+v", l)
			}
		}
	})
}
