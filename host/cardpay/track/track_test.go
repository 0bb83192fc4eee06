package track

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
)

func TestParseTrack2(t *testing.T) {
	tests := []struct {
		name, in           string
		pan, exp, svc, f35 string
	}{
		{"equals", "6222021234567890128=25122011234567890", "6222021234567890128", "2512", "201", "6222021234567890128D25122011234567890"},
		{"sentinels and D", ";4111111111111111D3012101?", "4111111111111111", "3012", "101", "4111111111111111D3012101"},
		{"lower d", "4012345678909d981220112345", "4012345678909", "9812", "201", "4012345678909D981220112345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ParseTrack2(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			c := tr.Card()
			if c.PAN != tt.pan || c.Expiry != tt.exp || c.ServiceCode != tt.svc || tr.Field35() != tt.f35 {
				t.Fatalf("got %+v %q", c, tr.Field35())
			}
			tr.Wipe()
			if tr.Field35() != "" {
				t.Fatal("Wipe kept the track")
			}
		})
	}
	bad := map[string]string{
		"empty":          "",
		"no separator":   "41111111111111112512201",
		"two separators": "4111111111111111=2512=201",
		"short pan":      "41111111111=2512201",
		"long pan":       "41111111111111111111=2512201",
		"no service":     "4111111111111111=2512",
		"month 13":       "4111111111111111=2513201",
		"letter":         "4111111111111111=25122X1",
		"too long":       "4111111111111111=25122011234567890123456",
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseTrack2(in)
			if jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("err = %v", err)
			}
			if len(in) > 8 && strings.Contains(err.Error(), in[:8]) {
				t.Fatalf("error shows the track: %v", err)
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	tr, err := ParseTrack2("6222021234567890128=25122011234567890")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "track", tr, "card", tr.Card())
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s", tr, tr, tr, tr.Card())
	if strings.Contains(out, "6222021234567890128") || strings.Contains(out, "2011234567890") {
		t.Fatalf("track leaked: %s", out)
	}
	if !strings.Contains(out, "622202*********0128") {
		t.Fatalf("no masked PAN: %s", out)
	}
}

func TestCardChecks(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for exp, want := range map[string]bool{"2612": false, "2611": true, "2701": false, "0001": true, "": true} {
		if got := (Card{Expiry: exp}).Expired(now); got != want {
			t.Errorf("Expired(%q) = %v", exp, got)
		}
	}
	if !(Card{ServiceCode: "201"}).ChipCard() || (Card{ServiceCode: "101"}).ChipCard() {
		t.Error("ChipCard")
	}
}

func TestParseTrack3(t *testing.T) {
	tr, err := ParseTrack3("996222021234567890128=1561560000000000000003000000114000025120=000000000000=000000000000=000000000")
	if err != nil {
		t.Fatal(err)
	}
	if tr.PAN != "6222021234567890128" || !strings.HasPrefix(tr.Field36(), "996222021234567890128D156") {
		t.Fatalf("got %q", tr.PAN)
	}
	for _, bad := range []string{"", "99=", "996222021234567890128", "99622202123456789012x=1"} {
		if _, err := ParseTrack3(bad); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Errorf("ParseTrack3(%q) = %v", bad, err)
		}
	}
}

func FuzzParseTrack2(f *testing.F) {
	for _, s := range []string{"6222021234567890128=25122011234567890", ";4111111111111111D3012101?", "", "=", "4111111111111111=2513"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := ParseTrack2(s)
		if err != nil {
			if jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("code %v", err)
			}
			return
		}
		c := tr.Card()
		if len(c.PAN) < 12 || len(c.PAN) > 19 || len(c.Expiry) != 4 || len(c.ServiceCode) != 3 {
			t.Fatalf("bad card %q %q %q", c.PAN, c.Expiry, c.ServiceCode)
		}
		again, err := ParseTrack2(tr.Field35())
		if err != nil || again.Field35() != tr.Field35() {
			t.Fatalf("field 35 form does not reparse: %v", err)
		}
	})
}

func FuzzParseTrack3(f *testing.F) {
	f.Add("996222021234567890128=1561560000000000000003000000114000025120=000000000000")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := ParseTrack3(s)
		if err != nil {
			return
		}
		if len(tr.PAN) < 12 || len(tr.PAN) > 19 {
			t.Fatalf("PAN %q", tr.PAN)
		}
	})
}
