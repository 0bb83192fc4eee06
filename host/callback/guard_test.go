package callback_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/callback"
)

func TestPublic(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"101.226.4.6", true},
		{"2606:4700:4700::1111", true},
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"fe80::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		{"100.64.0.1", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"255.255.255.255", false},
		{"198.18.0.1", false},
		{"192.0.2.10", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped loopback
		{"::ffff:10.0.0.1", false},
		{"::ffff:8.8.8.8", true},
		{"64:ff9b::a00:1", false}, // NAT64 of 10.0.0.1
		{"2002:a00:1::", false},   // 6to4 of 10.0.0.1
		{"2001:db8::1", false},
	} {
		if got := callback.Public(netip.MustParseAddr(tt.addr)); got != tt.public {
			t.Errorf("Public(%s) = %v, want %v", tt.addr, got, tt.public)
		}
	}
}

// TestDeliverPublicOnly: a PublicOnly client refuses a receiver on loopback,
// whether named by address or by a name resolving to it, before sending
// anything; the default client reaches it.
func TestDeliverPublicOnly(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	guarded := callback.NewHTTPClient(time.Second, callback.PublicOnly())
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/hook", "http://[::ffff:127.0.0.1]:" + port + "/"} {
		status, err := callback.Deliver(context.Background(), guarded, callback.Target{URL: u, Secret: []byte("s")}, testEvent("evt_guard"), time.Now())
		if jifu.ErrorCode(err) != jifu.CodeDenied || status != 0 || !strings.Contains(err.Error(), "non-public address") {
			t.Errorf("Deliver to %s with PublicOnly = %d, %v; want %s", u, status, err, jifu.CodeDenied)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the receiver got %d requests through the guard", n)
	}
	if _, err := callback.Deliver(context.Background(), callback.NewHTTPClient(time.Second), callback.Target{URL: srv.URL, Secret: []byte("s")}, testEvent("evt_guard"), time.Now()); err != nil {
		t.Fatalf("Deliver with the default client: %v", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("receiver hits = %d, want 1", hits.Load())
	}
}
