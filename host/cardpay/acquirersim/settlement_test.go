package acquirersim

import (
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
)

const goodFile = "rrn,tid,mid,stan,kind,amount,pan,auth_code\n" +
	"000000000001,T0000001,898310048990001,000123,purchase,20000,622202*********0128,000001\n" +
	"000000000003,T0000001,898310048990001,000125,refund,-5000,622202*********0128,000003\n" +
	"TOTAL,2,15000\n"

func TestParseSettlement(t *testing.T) {
	lines, err := ParseSettlement(strings.NewReader(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0].Amount != 20000 || lines[1].Kind != "refund" || lines[1].Amount != -5000 || lines[0].RRN != "000000000001" {
		t.Fatalf("%+v", lines)
	}
	bad := map[string]string{
		"empty":        "",
		"no header":    "TOTAL,0,0\n",
		"no trailer":   strings.TrimSuffix(goodFile, "TOTAL,2,15000\n"),
		"wrong count":  strings.Replace(goodFile, "TOTAL,2,", "TOTAL,3,", 1),
		"wrong total":  strings.Replace(goodFile, ",15000\n", ",15001\n", 1),
		"short line":   strings.Replace(goodFile, ",000001\n", "\n", 1),
		"bad amount":   strings.Replace(goodFile, ",20000,", ",2x000,", 1),
		"trailer junk": strings.Replace(goodFile, "TOTAL,2,15000", "TOTAL,2,15000x", 1),
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseSettlement(strings.NewReader(in)); jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func FuzzParseSettlement(f *testing.F) {
	f.Add(goodFile)
	f.Add("rrn,tid,mid,stan,kind,amount,pan,auth_code\nTOTAL,0,0\n")
	f.Fuzz(func(t *testing.T, s string) {
		lines, err := ParseSettlement(strings.NewReader(s))
		if err != nil {
			if jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("code %v", err)
			}
			return
		}
		var net int64
		for _, l := range lines {
			net += l.Amount
		}
		if !strings.Contains(s, "TOTAL,") {
			t.Fatal("accepted a file without a trailer")
		}
	})
}

func TestRespMTI(t *testing.T) {
	for in, want := range map[string]string{"0200": "0210", "0800": "0810", "0400": "0410", "0220": "0230"} {
		if got := respMTI(in); got != want {
			t.Errorf("respMTI(%s) = %s", in, got)
		}
	}
}
