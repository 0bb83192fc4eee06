package marketplace_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/marketplace"
)

// releasedApp returns an app with v1 released to everyone and v2 approved.
func releasedApp(t *testing.T, e *env) (*marketplace.App, *marketplace.Version, *marketplace.Version) {
	t.Helper()
	app, _ := e.newApp(e.dev)
	v1 := e.approved(e.dev, app, "1.0.0")
	rel, err := e.svc.StartRelease(context.Background(), e.dev, v1.ID, marketplace.ReleasePlan{Percent: 100})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Stage != marketplace.StageFull {
		t.Fatalf("100%% of everyone is stage %s", rel.Stage)
	}
	return app, v1, e.approved(e.dev, app, "2.0.0")
}

func newServing(t *testing.T, e *env) *marketplace.Serving {
	srv := marketplace.NewServing(e.svc, e.host, marketplace.ServingOptions{})
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	return srv
}

// assign routes n users and returns each one's version id.
func assign(t *testing.T, srv *marketplace.Serving, slug string, n int) map[string]int64 {
	t.Helper()
	out := make(map[string]int64, n)
	for i := 1; i <= n; i++ {
		u := marketplace.UserRef(int64(1_000_000 + i))
		r, err := srv.Route(context.Background(), slug, u)
		if err != nil {
			t.Fatal(err)
		}
		out[u] = r.VersionID
	}
	return out
}

func share(m map[string]int64, v int64) float64 {
	n := 0
	for _, x := range m {
		if x == v {
			n++
		}
	}
	return float64(n) / float64(len(m))
}

func TestGrayRelease(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app, v1, v2 := releasedApp(t, e)
	srv := newServing(t, e)

	if r, err := srv.Route(ctx, app.Slug, "u1"); err != nil || r.VersionID != v1.ID || r.Stage != marketplace.StageFull {
		t.Fatalf("before gray: %+v %v", r, err)
	}
	rel, err := e.svc.StartRelease(ctx, e.dev, v2.ID, marketplace.ReleasePlan{Percent: 10})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Stage != marketplace.StageGray || rel.PreviousID != v1.ID {
		t.Fatalf("release %+v", rel)
	}
	_, err = e.svc.StartRelease(ctx, e.dev, v2.ID, marketplace.ReleasePlan{Percent: 20})
	wantCode(t, err, jifu.CodeConflict) // one gray release at a time

	const n = 10000
	first := assign(t, srv, app.Slug, n)
	if s := share(first, v2.ID); s < 0.085 || s > 0.115 {
		t.Fatalf("10%% gray gave %.2f%% of %d users the new version", 100*s, n)
	}
	// Each user keeps its version.
	second := assign(t, srv, app.Slug, n)
	for u, v := range first {
		if second[u] != v {
			t.Fatalf("user %s moved from %d to %d", u, v, second[u])
		}
	}
	// Raising the percentage keeps everyone already in.
	if err := e.svc.SetGrayPercent(ctx, e.dev, app.ID, 50); err != nil {
		t.Fatal(err)
	}
	wider := assign(t, srv, app.Slug, n)
	for u, v := range first {
		if v == v2.ID && wider[u] != v2.ID {
			t.Fatalf("user %s left the gray release when it grew", u)
		}
	}
	if s := share(wider, v2.ID); s < 0.47 || s > 0.53 {
		t.Fatalf("50%% gray gave %.2f%%", 100*s)
	}
	wantCode(t, e.svc.SetGrayPercent(ctx, e.dev, app.ID, 101), jifu.CodeInvalid)
	wantCode(t, e.svc.SetGrayPercent(ctx, e.dev, app.ID, -1), jifu.CodeInvalid)

	// The new version really serves.
	r, err := srv.Route(ctx, app.Slug, firstWith(wider, v2.ID))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := r.App.HandleHTTP(ctx, hostCaller("u1"), &abi.Request{Method: "GET", Path: "/"})
	if err != nil || resp.Status != 200 {
		t.Fatalf("serving v2: %+v %v", resp, err)
	}

	// Rollback during gray: everyone back on v1.
	if err := e.svc.Rollback(ctx, e.dev, app.ID, "customers complain"); err != nil {
		t.Fatal(err)
	}
	back := assign(t, srv, app.Slug, n)
	if s := share(back, v1.ID); s != 1 {
		t.Fatalf("after rollback %.2f%% on v1", 100*s)
	}
	rels, err := e.svc.Releases(ctx, e.dev, app.ID)
	if err != nil || rels[0].Stage != marketplace.StageRolledBack || rels[0].Reason != "customers complain" {
		t.Fatalf("releases %+v %v", rels, err)
	}
	wantCode(t, e.svc.Promote(ctx, e.dev, app.ID), jifu.CodeConflict) // nothing in gray now
}

func firstWith(m map[string]int64, v int64) string {
	for u, x := range m {
		if x == v {
			return u
		}
	}
	return ""
}

func TestPromoteAndRollbackFull(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app, v1, v2 := releasedApp(t, e)
	srv := newServing(t, e)
	if _, err := e.svc.StartRelease(ctx, e.dev, v2.ID, marketplace.ReleasePlan{Percent: 0}); err != nil {
		t.Fatal(err)
	}
	if s := share(assign(t, srv, app.Slug, 500), v2.ID); s != 0 {
		t.Fatalf("0%% gray served %.2f%%", 100*s)
	}
	if err := e.svc.Promote(ctx, e.dev, app.ID); err != nil {
		t.Fatal(err)
	}
	if s := share(assign(t, srv, app.Slug, 500), v2.ID); s != 1 {
		t.Fatalf("after promote %.2f%% on v2", 100*s)
	}
	cat, err := e.svc.Catalog(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range cat {
		if l.App.ID == app.ID {
			found = l.Version == "2.0.0"
		}
	}
	if !found {
		t.Fatal("catalog does not list the promoted version")
	}
	// Roll back the full release: v1 again; once more: nothing earlier.
	if err := e.svc.Rollback(ctx, e.dev, app.ID, "regression"); err != nil {
		t.Fatal(err)
	}
	if s := share(assign(t, srv, app.Slug, 500), v1.ID); s != 1 {
		t.Fatalf("after full rollback %.2f%% on v1", 100*s)
	}
	wantCode(t, e.svc.Rollback(ctx, e.dev, app.ID, "again"), jifu.CodeConflict)
}

func TestSegmentAndWhitelist(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app, v1, v2 := releasedApp(t, e)
	srv := newServing(t, e)
	var users []*marketplace.User
	for _, level := range []int{101, 201, 201} {
		u, err := e.svc.EnsureUser(ctx, marketplace.System, uniquePhone())
		if err != nil {
			t.Fatal(err)
		}
		l, region := level, "310000"
		if err := e.svc.UpdateUser(ctx, e.admin, u.ID, marketplace.UserUpdate{Level: &l, Region: &region}); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	// 100% of level 201, plus user 0 by whitelist.
	plan := marketplace.ReleasePlan{Percent: 100, Segment: marketplace.Segment{Levels: []int{201}, Whitelist: []string{users[0].Ref()}}}
	if _, err := e.svc.StartRelease(ctx, e.dev, v2.ID, plan); err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		r, err := srv.Route(ctx, app.Slug, u.Ref())
		if err != nil || r.VersionID != v2.ID {
			t.Fatalf("user %d (level %d) got %+v %v", i, u.Level, r, err)
		}
	}
	if r, _ := srv.Route(ctx, app.Slug, "u999999999"); r.VersionID != v1.ID {
		t.Fatal("a user outside the segment got the gray version")
	}
	// Whitelist only: nobody else.
	if err := e.svc.SetSegment(ctx, e.dev, app.ID, marketplace.Segment{Whitelist: []string{users[1].Ref()}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := srv.Route(ctx, app.Slug, users[1].Ref()); r.VersionID != v2.ID {
		t.Fatal("whitelisted user lost the gray version")
	}
	if r, _ := srv.Route(ctx, app.Slug, users[2].Ref()); r.VersionID != v1.ID {
		t.Fatal("a user off the whitelist got the gray version")
	}
	wantCode(t, e.svc.SetSegment(ctx, e.dev, app.ID, marketplace.Segment{Levels: []int{5}}), jifu.CodeInvalid)
}

func TestAutomaticRollback(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *marketplace.Config) { c.AutoRollback = marketplace.AutoRollback{MinSample: 50, Margin: 0.05} })
	app, v1, v2 := releasedApp(t, e)
	if _, err := e.svc.StartRelease(ctx, e.dev, v2.ID, marketplace.ReleasePlan{Percent: 10}); err != nil {
		t.Fatal(err)
	}
	record := func(v int64, stage string, calls, errs int) {
		for i := 0; i < calls; i++ {
			e.svc.RecordInvocation(app.ID, v, stage, fmt.Sprintf("u%d", i+1), time.Millisecond, i < errs)
		}
	}
	// Below the minimum sample: no verdict even at 100% errors.
	record(v1.ID, marketplace.StageFull, 400, 4)
	record(v2.ID, marketplace.StageGray, 40, 40)
	checks, err := e.svc.EvaluateReleases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := findCheck(checks, app.Slug); c == nil || c.RolledBack || c.GrayCalls != 40 || c.StableCalls != 400 {
		t.Fatalf("below sample: %+v", c)
	}
	// With the sample reached: 40 errors in 500 calls (8%) against the
	// stable 1% is over the 5-point margin.
	record(v2.ID, marketplace.StageGray, 460, 0)
	checks, err = e.svc.EvaluateReleases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := findCheck(checks, app.Slug)
	if c == nil || !c.RolledBack {
		t.Fatalf("8%% vs 1%% errors not rolled back: %+v", c)
	}
	full, gray, err := e.svc.ActiveReleases(ctx, e.dev, app.ID)
	if err != nil || gray != nil || full.VersionID != v1.ID {
		t.Fatalf("after automatic rollback: full %+v gray %+v %v", full, gray, err)
	}
	log, _ := e.svc.AuditLog(ctx, e.admin, fmt.Sprintf("app:%d", app.ID), 5)
	if len(log) == 0 || log[0].Action != "release.rollback" || log[0].ActorRole != marketplace.RoleSystem {
		t.Fatalf("automatic rollback not audited: %+v", log)
	}

	// A healthy gray release survives evaluation.
	app2, w1, w2 := releasedApp(t, e)
	if _, err := e.svc.StartRelease(ctx, e.dev, w2.ID, marketplace.ReleasePlan{Percent: 10}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		e.svc.RecordInvocation(app2.ID, w1.ID, marketplace.StageFull, "u1", time.Millisecond, i%50 == 0)
		e.svc.RecordInvocation(app2.ID, w2.ID, marketplace.StageGray, "u2", 2*time.Millisecond, i%25 == 0)
	}
	checks, err = e.svc.EvaluateReleases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := findCheck(checks, app2.Slug); c == nil || c.RolledBack {
		t.Fatalf("4%% vs 2%% within a 5-point margin rolled back: %+v", c)
	}
	st, err := e.svc.Stats(ctx, e.dev, app2.ID, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var gray2 *marketplace.StageStats
	for i := range st.Stages {
		if st.Stages[i].VersionID == w2.ID && st.Stages[i].Stage == marketplace.StageGray {
			gray2 = &st.Stages[i]
		}
	}
	if gray2 == nil || gray2.Invocations != 200 || gray2.Errors != 8 || gray2.P50 < 2*time.Millisecond || gray2.P50 > 4*time.Millisecond {
		t.Fatalf("gray stats %+v", gray2)
	}
	if st.ActiveUsers != 2 {
		t.Fatalf("active users %d, want 2", st.ActiveUsers)
	}
}

func findCheck(cs []marketplace.ReleaseCheck, slug string) *marketplace.ReleaseCheck {
	for i := range cs {
		if cs[i].Slug == slug {
			return &cs[i]
		}
	}
	return nil
}
