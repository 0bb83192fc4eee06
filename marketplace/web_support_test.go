package marketplace_test

import (
	"context"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/marketplace"
)

// Listing shows only apps released to everyone; Installed follows the
// user's consent and revocation.
func TestListingAndInstalled(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dev := e.newDeveloper(marketplace.LevelBasic)
	app, _ := e.newApp(dev)

	_, err := e.svc.Listing(ctx, app.Slug)
	wantCode(t, err, jifu.CodeNotFound) // created, nothing released
	_, err = e.svc.Listing(ctx, "no-such-app")
	wantCode(t, err, jifu.CodeNotFound)

	v := e.approved(dev, app, "1.0.0")
	if _, err := e.svc.StartRelease(ctx, dev, v.ID, marketplace.ReleasePlan{Percent: 10}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Listing(ctx, app.Slug)
	wantCode(t, err, jifu.CodeNotFound) // gray only: not in the store yet
	if err := e.svc.Promote(ctx, dev, app.ID); err != nil {
		t.Fatal(err)
	}
	l, err := e.svc.Listing(ctx, app.Slug)
	if err != nil || l.App.ID != app.ID || l.Version != "1.0.0" || len(l.Scopes) != 1 || l.Scopes[0] != "storage" {
		t.Fatalf("listing %+v %v", l, err)
	}

	u, err := e.svc.EnsureUser(ctx, marketplace.System, uniquePhone())
	if err != nil {
		t.Fatal(err)
	}
	check := func(want bool) {
		t.Helper()
		got, err := e.svc.Installed(ctx, u.ID, app.Slug)
		if err != nil || got != want {
			t.Fatalf("Installed = %v %v, want %v", got, err, want)
		}
	}
	check(false)
	if err := e.svc.Install(ctx, u.ID, app.Slug, nil); err != nil {
		t.Fatal(err)
	}
	check(true)
	if err := e.svc.Revoke(ctx, u.ID, app.Slug, nil, true); err != nil {
		t.Fatal(err)
	}
	check(false)
	if got, err := e.svc.Installed(ctx, u.ID, "no-such-app"); err != nil || got {
		t.Fatalf("unknown app: %v %v", got, err)
	}
}
