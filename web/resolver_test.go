package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/web"
)

// recordingResolver serves one app to the users it knows and records the
// done calls.
type recordingResolver struct {
	app   *host.App
	users map[string]bool
	mu    sync.Mutex
	seen  []string
	done  []int
}

func (r *recordingResolver) Resolve(_ context.Context, slug, user string) (*host.App, func(int, error), error) {
	r.mu.Lock()
	r.seen = append(r.seen, user)
	r.mu.Unlock()
	if slug != "wat" || !r.users[user] {
		return nil, nil, jifu.Errorf(jifu.CodeNotFound, "not released to you")
	}
	return r.app, func(status int, err error) {
		r.mu.Lock()
		r.done = append(r.done, status)
		r.mu.Unlock()
	}, nil
}

func TestResolverRouting(t *testing.T) {
	ctx := context.Background()
	h, err := host.New(ctx, host.Config{KV: kvstore.New(dbtest.Pool(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, ps := manifest.Parse([]byte(`{"abi":1,"slug":"wat","name":"W","version":"1.0.0","scopes":["storage"],"entry_points":["handle_http"]}`))
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	app, err := h.Load(ctx, host.AppSpec{Wasm: guesttest.ReadFile(t, "host/testdata/wat/hello.wasm"), Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	res := &recordingResolver{app: app, users: map[string]bool{"u7": true}}
	srv := httptest.NewServer(web.New(web.Deps{Resolver: res, User: func(r *http.Request) string {
		if c, err := r.Cookie("s"); err == nil {
			return c.Value
		}
		return ""
	}}))
	defer srv.Close()

	get := func(cookie string, hdr map[string]string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/apps/wat/", nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "s", Value: cookie})
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get("u7", nil); st != 200 {
		t.Fatalf("released user: %d", st)
	}
	if st := get("u8", nil); st != 404 {
		t.Fatalf("user without a release: %d", st)
	}
	// Outside dev mode the header identity is ignored.
	if st := get("", map[string]string{"X-Jifu-User": "u7"}); st != 404 {
		t.Fatalf("X-Jifu-User trusted: %d", st)
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	if len(res.done) != 1 || res.done[0] != 200 {
		t.Fatalf("done calls %v", res.done)
	}
	if len(res.seen) != 3 || res.seen[0] != "u7" || res.seen[1] != "u8" || res.seen[2] != "" {
		t.Fatalf("users seen %q", res.seen)
	}
}
