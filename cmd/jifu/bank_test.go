package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/bank/banksim"
)

func TestParseFaults(t *testing.T) {
	tests := []struct {
		in   string
		want banksim.Faults
		bad  bool
	}{
		{in: "", want: banksim.Faults{ExecuteLost: 0.5}},
		{in: "fail=0.1,timeout=0.05,delay=20ms,jitter=5ms,lost-executes=1",
			want: banksim.Faults{FailRate: 0.1, TimeoutRate: 0.05, Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, ExecuteLost: 1}},
		{in: "fail=2", bad: true},
		{in: "fail=-0.1", bad: true},
		{in: "delay=-1s", bad: true},
		{in: "delay=soon", bad: true},
		{in: "explode=1", bad: true},
	}
	for _, tc := range tests {
		got, err := parseFaults(tc.in)
		if tc.bad {
			if jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Errorf("%q: %v; want invalid", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// The wallet page serves through `jifu serve` with the in-process bank: a
// demo user sees its bound account and withdraws (not a top-up: the ledger
// test of this package counts the day's demo top-ups).
func TestServeWallet(t *testing.T) {
	c := newCmdEnv(t)
	base, stop := c.serve("--dev-apps", t.TempDir(), "--dev")
	defer stop()
	u := map[string]string{"X-Jifu-User": "u2"}
	st, body := httpDo(t, "GET", base+"/wallet", u)
	if st != 200 || !strings.Contains(body, "622202*********0002") {
		t.Fatalf("wallet page = %d\n%s", st, body)
	}
	avail := func(body string) string {
		return regexp.MustCompile(`data-testid="available">([^<]*)<`).FindStringSubmatch(body)[1]
	}
	before := avail(body)
	key := regexp.MustCompile(`name="key" value="([^"]+)"`).FindStringSubmatch(body)[1]
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(body)[1]
	form := url.Values{"key": {key}, "token": {token}, "amount": {"1.00"}}
	req, _ := http.NewRequest("POST", base+"/wallet/withdraw", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Jifu-User", "u2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("withdrawal = %d", resp.StatusCode)
	}
	_, body = httpDo(t, "GET", base+"/wallet", u)
	if after := avail(body); after == before || !strings.Contains(body, "succeeded") {
		t.Fatalf("available %s -> %s after a withdrawal\n%s", before, after, body)
	}
	if st, _ := httpDo(t, "GET", base+"/wallet", nil); st != 403 {
		t.Fatalf("anonymous wallet = %d", st)
	}
}
