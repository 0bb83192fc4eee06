package cardpay_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/outbox"
)

type received struct {
	sig  string
	body []byte
}

// TestMerchantNotification: each payment result reaches the merchant's
// notify_url exactly once, signed with its pay_secret, with order_id and
// params; a replayed request sends nothing new.
func TestMerchantNotification(t *testing.T) {
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{sig: r.Header.Get(callback.HeaderSignature), body: b})
		mu.Unlock()
	}))
	defer srv.Close()
	pool := dbtest.Pool(t)
	e := setup(t)
	sink, err := cardpay.NewNotifySink(pool, e.master, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{Pool: pool, Queue: cardpay.NotifyQueue, Sinks: map[string]outbox.Sink{cardpay.NotifySinkName: sink},
		FetchPollInterval: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), LeaderElectionDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	defer ob.Stop(e.ctx)
	be := newBooksEnv(t, cardpay.Options{Notifier: cardpay.OutboxNotifier{Outbox: ob}}, srv.URL+"/notify")
	rctx, stopRelay := context.WithCancel(e.ctx)
	defer stopRelay()
	go be.svc.RunNotifyRelay(rctx, 0) // beside the shared service's relay: they share the rows

	req := build(t, be.reader, pay("nt-1", 1000))
	for range 2 { // the same request twice: one result, one notification
		if res, err := be.svc.Authorize(e.ctx, req); err != nil || !res.Approved() {
			t.Fatal(res, err)
		}
	}
	if res := be.pay(t, "nt-2", 4444); res.Status != cardpay.StatusDeclined {
		t.Fatal(res)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // room for a duplicate to show
	mu.Lock()
	defer mu.Unlock()
	perOrder := map[string]int{}
	for _, r := range got {
		if err := callback.Verify([]byte(be.secret), r.sig, r.body, time.Now(), 0); err != nil {
			t.Fatalf("signature: %v", err)
		}
		var b struct {
			ID   string               `json:"id"`
			Type string               `json:"type"`
			Data cardpay.Notification `json:"data"`
		}
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		perOrder[b.Data.OrderID]++
		switch b.Data.OrderID {
		case "nt-1":
			if b.Type != "card.payment.approved" || b.Data.Params != "cup=1&size=L" || b.Data.Amount != 1000 || len(b.Data.RRN) != 12 || b.Data.PAN != "622202*********0128" {
				t.Fatalf("approved notification %s", r.body)
			}
		case "nt-2":
			if b.Type != "card.payment.declined" || b.Data.Rule != "acquirer:51" || b.Data.Params != "cup=1&size=L" {
				t.Fatalf("declined notification %s", r.body)
			}
		default:
			t.Fatalf("notification for %q", b.Data.OrderID)
		}
	}
	if len(got) != 2 || perOrder["nt-1"] != 1 || perOrder["nt-2"] != 1 {
		t.Fatalf("notifications per order %v (%d in all)", perOrder, len(got))
	}
}
