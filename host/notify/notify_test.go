package notify_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/notify"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func phone() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("138%08d", (uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]))%100000000)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		m    notify.Message
		ok   bool
	}{
		{"sms", notify.Message{Channel: notify.SMS, To: "13800138000", Purpose: notify.PurposeOTP, Body: "code 123456"}, true},
		{"push", notify.Message{Channel: notify.Push, To: "u42", Purpose: notify.PurposeApp, Body: "hi"}, true},
		{"landline", notify.Message{Channel: notify.SMS, To: "02112345678", Purpose: notify.PurposeOTP, Body: "x"}, false},
		{"short", notify.Message{Channel: notify.SMS, To: "1380013800", Purpose: notify.PurposeOTP, Body: "x"}, false},
		{"fax", notify.Message{Channel: "fax", To: "13800138000", Purpose: notify.PurposeOTP, Body: "x"}, false},
		{"purpose", notify.Message{Channel: notify.SMS, To: "13800138000", Purpose: "spam", Body: "x"}, false},
		{"empty body", notify.Message{Channel: notify.SMS, To: "13800138000", Purpose: notify.PurposeApp, Body: "  "}, false},
		{"long body", notify.Message{Channel: notify.SMS, To: "13800138000", Purpose: notify.PurposeApp, Body: strings.Repeat("字", 701)}, false},
		{"bad utf8", notify.Message{Channel: notify.SMS, To: "13800138000", Purpose: notify.PurposeApp, Body: "\xff"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Check()
			if (err == nil) != tt.ok {
				t.Fatalf("Check = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("code %s", jifu.ErrorCode(err))
			}
		})
	}
	if s := fmt.Sprint(notify.Message{Channel: notify.SMS, To: "13800138000", Purpose: notify.PurposeOTP, Body: "code 123456"}); strings.Contains(s, "123456") {
		t.Fatalf("a message prints its body: %s", s)
	}
}

func TestOTPRateLimit(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	clk := &clock{t: time.Now()}
	out := notify.NewOutbox(pool)
	n := notify.New(pool, out, notify.Options{OTPInterval: time.Minute, OTPPerHour: 3, OTPPerDay: 4, Now: clk.now})
	to := phone()
	otp := func() error {
		return n.Send(ctx, notify.Message{Channel: notify.SMS, To: to, Purpose: notify.PurposeOTP, Body: "code"})
	}
	if err := otp(); err != nil {
		t.Fatal(err)
	}
	if err := otp(); jifu.ErrorCode(err) != jifu.CodeLimit {
		t.Fatalf("second code within the interval: %v", err)
	}
	// Other purposes are not limited here.
	if err := n.Send(ctx, notify.Message{Channel: notify.SMS, To: to, Purpose: notify.PurposeApp, Body: "your bill"}); err != nil {
		t.Fatal(err)
	}
	clk.add(61 * time.Second)
	if err := otp(); err != nil {
		t.Fatal(err)
	}
	clk.add(61 * time.Second)
	if err := otp(); err != nil {
		t.Fatal(err)
	}
	clk.add(61 * time.Second)
	if err := otp(); jifu.ErrorCode(err) != jifu.CodeLimit || !strings.Contains(err.Error(), "an hour") {
		t.Fatalf("fourth code in an hour: %v", err)
	}
	clk.add(time.Hour)
	if err := otp(); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	if err := otp(); jifu.ErrorCode(err) != jifu.CodeLimit || !strings.Contains(err.Error(), "a day") {
		t.Fatalf("fifth code in a day: %v", err)
	}
	msgs, err := out.List(ctx, notify.Filter{To: to})
	if err != nil || len(msgs) != 5 { // 4 codes and the bill
		t.Fatalf("outbox holds %d messages, %v", len(msgs), err)
	}
	if msgs[0].Body != "code" || msgs[0].To != to || msgs[0].ID <= msgs[1].ID {
		t.Fatalf("newest first: %+v", msgs[0])
	}
	if _, err := out.List(ctx, notify.Filter{Limit: 501}); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("limit 501: %v", err)
	}
}

// TestOTPConcurrent: parallel requests for one number send one code.
func TestOTPConcurrent(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	out := notify.NewOutbox(pool)
	n := notify.New(pool, out, notify.Options{})
	to := phone()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- n.Send(ctx, notify.Message{Channel: notify.SMS, To: to, Purpose: notify.PurposeOTP, Body: "code"})
		}()
	}
	wg.Wait()
	close(errs)
	sent := 0
	for err := range errs {
		switch jifu.ErrorCode(err) {
		case "":
			sent++
		case jifu.CodeLimit:
		default:
			t.Fatal(err)
		}
	}
	if msgs, _ := out.List(ctx, notify.Filter{To: to}); sent != 1 || len(msgs) != 1 {
		t.Fatalf("%d sends succeeded, %d delivered; want 1", sent, len(msgs))
	}
}

// failing is a provider that is down.
type failing struct{}

func (failing) Deliver(context.Context, notify.Message) error {
	return jifu.Errorf(jifu.CodeUnavailable, "carrier down")
}

// TestFailedDeliveryNotCounted: a send the carrier refused does not count
// against the limit.
func TestFailedDeliveryNotCounted(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	to := phone()
	m := notify.Message{Channel: notify.SMS, To: to, Purpose: notify.PurposeOTP, Body: "code"}
	if err := notify.New(pool, failing{}, notify.Options{}).Send(ctx, m); jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Fatalf("down carrier: %v", err)
	}
	if err := notify.New(pool, notify.NewOutbox(pool), notify.Options{}).Send(ctx, m); err != nil {
		t.Fatalf("retry after a failed delivery: %v", err)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("sms", "13800138000", "otp", "code 123456")
	f.Add("push", "u1", "app", "hi")
	f.Add("sms", "1380013800\n", "otp", "\xff")
	f.Fuzz(func(t *testing.T, channel, to, purpose, body string) {
		m := notify.Message{Channel: channel, To: to, Purpose: purpose, Body: body}
		if err := m.Check(); err != nil {
			if jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("code %s", jifu.ErrorCode(err))
			}
			return
		}
		if channel == notify.SMS && !notify.ValidPhone(to) {
			t.Fatalf("accepted SMS to %q", to)
		}
	})
}
