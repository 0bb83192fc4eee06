package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/marketplace"
)

// Outside --dev-apps, serve publishes the first-party plugins through the
// marketplace (upload, checks, approval, full release) and serves them by
// release; seeding again on restart changes nothing.
func TestServePublishesPlugins(t *testing.T) {
	c := newCmdEnv(t)
	apps := buildHello(t, c)
	for round := range 2 {
		base, stop := c.serve("--plugins", apps)
		st, page := httpDo(t, "GET", base+"/apps/hello/", nil)
		if st != 200 || !strings.Contains(page, "guest") {
			stop()
			t.Fatalf("round %d: hello through the marketplace = %d\n%s", round, st, page)
		}
		if st, _ := httpDo(t, "GET", base+"/apps/nope/", nil); st != 404 {
			stop()
			t.Fatalf("unknown app = %d", st)
		}
		stop()
	}
	ctx := context.Background()
	pool := dbtest.Pool(t)
	var versions, releases, users int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM mp_versions v JOIN mp_apps a ON a.id = v.app_id WHERE a.slug = 'hello'),
		(SELECT count(*) FROM mp_releases r JOIN mp_apps a ON a.id = r.app_id WHERE a.slug = 'hello'),
		(SELECT count(*) FROM mp_users WHERE phone LIKE '138000003%' OR phone LIKE '138000001%' OR phone LIKE '138000002%')`).
		Scan(&versions, &releases, &users); err != nil {
		t.Fatal(err)
	}
	if versions != 1 || releases != 1 || users != 4 {
		t.Fatalf("after two seedings: %d versions, %d releases, %d users; want 1, 1, 4", versions, releases, users)
	}
	var status string
	if err := pool.QueryRow(ctx, `SELECT v.status FROM mp_versions v JOIN mp_apps a ON a.id = v.app_id WHERE a.slug = 'hello'`).Scan(&status); err != nil || status != marketplace.StatusApproved {
		t.Fatalf("hello version %s, %v", status, err)
	}
}
