package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
)

func TestStartDebug(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		addr string
		code string
	}{
		{"0.0.0.0:0", jifu.CodeInvalid},
		{":6060", jifu.CodeInvalid},
		{"192.0.2.1:6060", jifu.CodeInvalid},
		{"example.com:6060", jifu.CodeInvalid},
		{"no-port", jifu.CodeInvalid},
	} {
		if _, err := startDebug(ctx, tt.addr, log); jifu.ErrorCode(err) != tt.code {
			t.Errorf("startDebug(%q) = %v, want %s", tt.addr, err, tt.code)
		}
	}
	stop, err := startDebug(ctx, "", log)
	if err != nil {
		t.Fatal(err)
	}
	stop() // nothing to stop

	// On loopback it serves the profiler's index.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	stop, err = startDebug(ctx, addr, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET /debug/pprof/ = %d %.200s", resp.StatusCode, body)
	}
	stop()
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Error("the profiler still answers after stop")
	}
}
