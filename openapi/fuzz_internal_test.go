package openapi

import (
	"context"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host/ratelimit"
)

// FuzzSafeNext: whatever a visitor puts in ?next=, the QR login sends the
// browser only to a path on this site.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/apps/x/?a=1", "//evil.example/", "https://evil.example", "/\\evil", "", "/a\r\nSet-Cookie: x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n") {
			t.Fatalf("safeNext(%q) = %q", next, got)
		}
		if got != "/" && got != next {
			t.Fatalf("safeNext(%q) changed a safe path to %q", next, got)
		}
	})
}

// FuzzSecretHasher: a client secret matches only one of the app's live
// secrets, exactly.
func FuzzSecretHasher(f *testing.F) {
	f.Add("sk_one\nsk_two", "sk_two")
	f.Add("sk_one", "")
	f.Add("sk_one", "sk_one\nsk_two")
	f.Fuzz(func(t *testing.T, stored, given string) {
		err := secretHasher{}.Compare(context.Background(), []byte(stored), []byte(given))
		want := given != ""
		if want {
			want = false
			for _, s := range strings.Split(stored, "\n") {
				want = want || s == given
			}
		}
		if (err == nil) != want {
			t.Fatalf("Compare(%q, %q) = %v", stored, given, err)
		}
	})
}

func TestMaskers(t *testing.T) {
	for in, want := range map[string]string{"13800138000": "138****8000", "123": "***", "": ""} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"张三丰": "张**", "李": "李", "": ""} {
		if got := MaskName(in); got != want {
			t.Errorf("MaskName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseLevels(t *testing.T) {
	got, err := ParseLevels("basic=1.5/3, full=1000/2000")
	if err != nil || got["basic"].Rate != 1.5 || got["basic"].Burst != 3 || got["full"].Burst != 2000 || got["standard"] != DefaultLevels()["standard"] {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"basic", "basic=1", "gold=1/1", "basic=0/1", "basic=-1/1", "basic=NaN/1", "basic=Inf/1", "basic=1/0", "basic=1/x"} {
		if _, err := ParseLevels(bad); err == nil {
			t.Errorf("ParseLevels(%q) accepted", bad)
		}
	}
}

// FuzzParseLevels: whatever the operator writes, accepted levels are
// usable by the rate limiter.
func FuzzParseLevels(f *testing.F) {
	f.Add("basic=5/10,standard=20/40")
	f.Add("full=0.5/1")
	f.Fuzz(func(t *testing.T, s string) {
		lv, err := ParseLevels(s)
		if err != nil {
			return
		}
		if _, err := ratelimit.New(ratelimit.Config{Levels: lv, Default: "basic"}); err != nil {
			t.Fatalf("ParseLevels(%q) gave levels the limiter refuses: %v", s, err)
		}
	})
}
