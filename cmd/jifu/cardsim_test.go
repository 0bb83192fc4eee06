package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `jifu serve` with its defaults (what `make run` starts) runs the local
// acquirer in-process, mounts /card/, and seeds the demo merchant and
// readers: the demo command lines of its banner work.
func TestServeDefaultsMountCard(t *testing.T) {
	c := newCmdEnv(t)
	base, stop := c.serve()
	defer stop()
	// The package's tests share one database but not their data folders,
	// where the demo readers keep their counters: start past earlier runs.
	counter := strconv.FormatInt(1000+time.Now().Unix()%500000, 10)
	for _, scheme := range []string{"tdes", "aes"} {
		code, out, errs := c.run("terminal", "pay", "--server", base, "--amount", "2345", "--order", "dflt-"+scheme, "--scheme", scheme,
			"--counter", counter)
		var res struct{ Status, RRN, PAN string }
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Status != "approved" || res.PAN != "622202*********0128" {
			t.Fatalf("%s: exit %d\n%s\n%s", scheme, code, out, errs)
		}
	}
	code, out, errs := c.run("terminal", "refund", "--server", base, "--order", "dflt-aes", "--amount", "1000", "--refund-id", "dflt-r1")
	if code != 0 || !strings.Contains(out, `"kind": "refund"`) {
		t.Fatalf("refund: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ := c.run("terminal", "void", "--server", base, "--order", "dflt-tdes", "--amount", "2345"); code != 0 || !strings.Contains(out, `"kind": "void"`) {
		t.Fatalf("void: exit %d\n%s", code, out)
	}
	// A refund of the voided payment: refused with its reason, exit 1.
	if code, out, _ := c.run("terminal", "refund", "--server", base, "--order", "dflt-tdes", "--amount", "1"); code != 1 || !strings.Contains(out, "refund:voided") {
		t.Fatalf("refund after void: exit %d\n%s", code, out)
	}
}

// --no-card-sim without an acquirer: no card core.
func TestServeNoCardSim(t *testing.T) {
	c := newCmdEnv(t)
	base, stop := c.serve("--no-card-sim")
	defer stop()
	if st, _ := httpDo(t, "POST", base+"/card/pay", nil); st != 404 && st != 405 {
		t.Fatalf("/card/pay answered %d without a card core", st)
	}
}
