package portal_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/portal"
	"github.com/jifu-open/jifu/web/webtest"
)

var at = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)

func devPage(title string) layout.Page {
	return layout.Page{Title: title, Area: layout.AreaPortal, Who: "Dana", Role: "developer", CSRF: "tok-123"}
}

func version(id int64, v, status string, scopes ...string) *marketplace.Version {
	m := &manifest.Manifest{ABI: 1, Slug: "hello", Name: "Hello", Version: v, Scopes: scopes, EntryPoints: []string{"handle_http"},
		Limits: manifest.Limits{MemoryPages: 512, TimeoutMS: 2000, HostCalls: 100, RequestBytes: 1 << 20, ResponseBytes: 1 << 20}}
	return &marketplace.Version{ID: id, AppID: 7, Slug: "hello", Version: v, SHA256: strings.Repeat("ab", 32), Size: 3400000, Manifest: m,
		Imports: []string{"jifu_v1.kv_get", "jifu_v1.log"}, Status: status, CreatedAt: at,
		Report: marketplace.CheckReport{Passed: true, Size: 3400000, MaxSize: 32 << 20, Limits: m.Limits, Scopes: scopes,
			Imports: []string{"jifu_v1.kv_get", "jifu_v1.log"}, CheckedAt: at, Duration: 316 * time.Millisecond,
			SelfTests: []marketplace.SelfTestResult{{Method: "GET", Path: "/", ExpectStatus: 200, Status: 200, DurationMS: 12, Passed: true},
				{Method: "GET", Path: "/nope", ExpectStatus: 404, Status: 500, Error: "guest_trap: unreachable", Passed: false}}}}
}

var helloApp = &marketplace.App{ID: 7, DeveloperID: 3, Slug: "hello", Name: "Hello", Icon: "👋", Category: "tools",
	Description: "A greeting page", CreatedAt: at}

func release(id, versionID int64, v, stage string, pct float64, prev int64) *marketplace.Release {
	return &marketplace.Release{ID: id, AppID: 7, VersionID: versionID, Version: v, Stage: stage, Percent: pct, PreviousID: prev,
		CreatedAt: at, UpdatedAt: at}
}

func TestAppReleaseControls(t *testing.T) {
	v1 := version(1, "1.0.0", marketplace.StatusApproved, "storage")
	v2 := version(2, "1.1.0", marketplace.StatusApproved, "storage")
	v3 := version(3, "1.2.0", marketplace.StatusChecked, "storage")
	tests := []struct {
		name    string
		view    portal.AppView
		present []string
		absent  []string
	}{
		{"nothing released", portal.AppView{Versions: []*marketplace.Version{v3, v2, v1}},
			[]string{"release-form-1.0.0", "release-form-1.1.0", "submit-1.2.0"}, []string{"promote", "rollback-form", "percent-form", "release-form-1.2.0"}},
		{"stable, no earlier version", portal.AppView{Versions: []*marketplace.Version{v2, v1}, Full: release(1, 1, "1.0.0", marketplace.StageFull, 100, 0)},
			[]string{"release-form-1.1.0"}, []string{"release-form-1.0.0", "promote", "rollback-form"}},
		{"gray over stable", portal.AppView{Versions: []*marketplace.Version{v2, v1}, Full: release(1, 1, "1.0.0", marketplace.StageFull, 100, 0),
			Gray: release(2, 2, "1.1.0", marketplace.StageGray, 10, 1)},
			[]string{"percent-form", "segment-form", "promote", "rollback-form"}, []string{"release-form-1.1.0", "release-form-1.0.0"}},
		{"stable with a previous version", portal.AppView{Versions: []*marketplace.Version{v2, v1}, Full: release(3, 2, "1.1.0", marketplace.StageFull, 100, 1)},
			[]string{"rollback-form", "release-form-1.0.0"}, []string{"promote", "percent-form"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.view.Page, tt.view.App = devPage("Hello"), helloApp
			doc := webtest.Render(t, portal.App(tt.view))
			for _, id := range tt.present {
				if len(webtest.ByTestID(doc, id)) == 0 {
					t.Errorf("%s missing", id)
				}
			}
			for _, id := range tt.absent {
				if len(webtest.ByTestID(doc, id)) != 0 {
					t.Errorf("%s shown", id)
				}
			}
		})
	}
}

// Every form of the app console carries the page's CSRF token.
func TestFormsCarryCSRF(t *testing.T) {
	v := portal.AppView{Page: devPage("Hello"), App: helloApp, Versions: []*marketplace.Version{version(2, "1.1.0", marketplace.StatusApproved)},
		Full: release(1, 1, "1.0.0", marketplace.StageFull, 100, 0), Gray: release(2, 2, "1.1.0", marketplace.StageGray, 10, 1)}
	out := webtest.HTML(t, portal.App(v))
	forms := strings.Count(out, "<form")
	tokens := strings.Count(out, `name="csrf" value="tok-123"`)
	if forms == 0 || tokens != forms {
		t.Fatalf("%d forms, %d CSRF fields", forms, tokens)
	}
}

func TestAppGolden(t *testing.T) {
	v := portal.AppView{Page: devPage("Hello"), App: helloApp,
		Keys:     []marketplace.KeyMeta{{ID: 2, Env: "production", AppKey: "jfk0123456789abcdef0123", CreatedAt: at}, {ID: 1, Env: "sandbox", AppKey: "sbx0123456789abcdef0123", CreatedAt: at}},
		Versions: []*marketplace.Version{version(2, "1.1.0", marketplace.StatusApproved, "storage"), version(1, "1.0.0", marketplace.StatusApproved, "storage")},
		Full:     release(1, 1, "1.0.0", marketplace.StageFull, 100, 0), Gray: release(2, 2, "1.1.0", marketplace.StageGray, 12.5, 1)}
	v.Gray.Segment = marketplace.Segment{Levels: []int{101, 102}, Regions: []string{"310000"}}
	v.Releases = []*marketplace.Release{v.Gray, v.Full}
	v.Health = []marketplace.StageStats{{VersionID: 1, Version: "1.0.0", Stage: "full", Invocations: 900, Errors: 9, P50: 2 * time.Millisecond, P99: 8 * time.Millisecond},
		{VersionID: 2, Version: "1.1.0", Stage: "gray", Invocations: 100, Errors: 30, P50: 4 * time.Millisecond, P99: 64 * time.Millisecond}}
	doc := webtest.Render(t, portal.App(v))
	if got := webtest.Text(webtest.One(t, doc, "gray")); got != "1.1.0 to 12.5% of levels 101, 102; regions 310000" {
		t.Errorf("gray = %q", got)
	}
	if got := webtest.Text(webtest.One(t, doc, "health-1.1.0-gray")); got != "1.1.0 gray 100 30.00% 4ms 64ms" {
		t.Errorf("gray health = %q", got)
	}
	webtest.Golden(t, "app", webtest.HTML(t, portal.App(v)))
}

func TestVersionView(t *testing.T) {
	prev := version(1, "1.0.0", marketplace.StatusApproved, "storage")
	next := version(2, "1.1.0", marketplace.StatusInReview, "storage", "notify.push")
	next.Imports = append(next.Imports, "jifu_v1.notify_push")
	next.Manifest.Limits.TimeoutMS = 5000
	rv := &marketplace.Review{Version: next, App: helloApp, Previous: prev, Diff: marketplace.DiffVersions(prev, next)}
	reviewer := layout.Page{Title: "Review", Area: layout.AreaReview, Who: "Rita", Role: "reviewer", CSRF: "tok"}

	doc := webtest.Render(t, portal.Version(portal.VersionView{Page: reviewer, Review: rv, Reviewer: true}))
	webtest.One(t, doc, "decision")
	webtest.One(t, doc, "approve")
	if got := webtest.Text(webtest.One(t, doc, "scope-added")); got != "+ scope notify.push" {
		t.Errorf("scope added = %q", got)
	}
	if got := webtest.Text(webtest.One(t, doc, "limit-changed")); got != "limit timeout_ms : 2000 → 5000" {
		t.Errorf("limit = %q", got)
	}
	if n := len(webtest.ByTestID(doc, "self-test")); n != 2 {
		t.Errorf("%d self-tests shown", n)
	}
	webtest.Golden(t, "review", webtest.HTML(t, portal.Version(portal.VersionView{Page: reviewer, Review: rv, Reviewer: true})))

	// The developer sees the outcome, never the decision form.
	next.Status, next.ReviewComment = marketplace.StatusRejected, "asks for push without a reason"
	doc = webtest.Render(t, portal.Version(portal.VersionView{Page: devPage("v"), Review: rv, Owner: true}))
	if len(webtest.ByTestID(doc, "decision")) != 0 {
		t.Error("the developer sees the decision form")
	}
	if got := webtest.Text(webtest.One(t, doc, "review-comment")); got != "asks for push without a reason" {
		t.Errorf("comment = %q", got)
	}
	// First version: everything is new.
	rv = &marketplace.Review{Version: prev, App: helloApp, Diff: marketplace.DiffVersions(nil, prev)}
	doc = webtest.Render(t, portal.Version(portal.VersionView{Page: reviewer, Review: rv, Reviewer: true}))
	if !strings.Contains(webtest.Text(webtest.One(t, doc, "diff")), "nothing (first version)") {
		t.Error("first version's diff")
	}
}

func TestStatsCharts(t *testing.T) {
	st := &marketplace.AppStats{AppID: 7, Since: at, Installs: 42, ActiveUsers: 17, PaymentFen: 123456, Payments: 3,
		Stages: []marketplace.StageStats{{VersionID: 1, Version: "1.0.0", Stage: "full", Invocations: 900, Errors: 9, P50: 2 * time.Millisecond, P99: 16 * time.Millisecond, Mean: 3 * time.Millisecond},
			{VersionID: 2, Version: "1.1.0", Stage: "gray", Invocations: 100, Errors: 20, P50: 4 * time.Millisecond, P99: 64 * time.Millisecond, Mean: 5 * time.Millisecond}},
		ActiveByVersion: map[int64]int64{1: 15, 2: 2}}
	for i := range 7 {
		st.Days = append(st.Days, marketplace.DayStats{Day: at.AddDate(0, 0, i-6), Invocations: int64(i * 100), Errors: int64(i), ActiveUsers: int64(i), PaymentFen: int64(i * 1000)})
	}
	v := portal.StatsView{Page: devPage("Stats"), App: helloApp, Stats: st, Days: 7, Charts: portal.DayCharts(st)}
	doc := webtest.Render(t, portal.Stats(v))
	if got := webtest.Text(webtest.One(t, doc, "payments")); got != "3 · ¥1234.56" {
		t.Errorf("payments = %q", got)
	}
	if got := webtest.Text(webtest.One(t, doc, "stage-1.1.0-gray")); !strings.Contains(got, "20.00%") {
		t.Errorf("gray stage row = %q", got)
	}
	chart := webtest.One(t, doc, "chart-invocations")
	if !strings.Contains(webtest.HTML(t, portal.Stats(v)), "<svg") {
		t.Fatal("no SVG")
	}
	if !strings.Contains(webtest.Text(chart), "max 600") {
		t.Errorf("chart caption = %q", webtest.Text(chart))
	}
	webtest.Golden(t, "stats", webtest.HTML(t, portal.Stats(v)))
}

func TestNewChart(t *testing.T) {
	c := portal.NewChart("t", "id", "c", []string{"a", "b", "c", "d"}, []int64{0, 1, 500, 1000})
	if c.Max != 1000 || len(c.Bars) != 4 {
		t.Fatalf("chart %+v", c)
	}
	inner := c.Height - 48
	tests := []struct {
		bar, h int
	}{{0, 0}, {1, 1}, {2, inner / 2}, {3, inner}}
	for _, tt := range tests {
		if b := c.Bars[tt.bar]; b.H != tt.h || b.Y+b.H != c.Height-24 {
			t.Errorf("bar %d: h %d y %d, want h %d on the axis", tt.bar, b.H, b.Y, tt.h)
		}
	}
	if c := portal.NewChart("t", "id", "c", nil, nil); len(c.Bars) != 0 {
		t.Error("empty chart has bars")
	}
}

func TestParseSegment(t *testing.T) {
	tests := []struct {
		name                       string
		levels, chans, regs, white string
		want                       marketplace.Segment
		err                        bool
	}{
		{"empty", "", "", "", "", marketplace.Segment{}, false},
		{"lists", "101, 102", "natural，diversion", "310000\n110000", "u1 u2", marketplace.Segment{Levels: []int{101, 102},
			Channels: []string{"natural", "diversion"}, Regions: []string{"310000", "110000"}, Whitelist: []string{"u1", "u2"}}, false},
		{"bad level", "10x", "", "", "", marketplace.Segment{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := portal.ParseSegment(tt.levels, tt.chans, tt.regs, tt.white)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if !tt.err && portal.SegmentText(got) != portal.SegmentText(tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseSegment: any typed input gives a segment or an error, never a
// panic, and no entry is empty or holds a separator.
func FuzzParseSegment(f *testing.F) {
	f.Add("101, 102", "natural", "310000", "u1,u2")
	f.Add("", "，,", "\n", " ")
	f.Fuzz(func(t *testing.T, levels, chans, regs, white string) {
		g, err := portal.ParseSegment(levels, chans, regs, white)
		if err != nil {
			return
		}
		for _, list := range [][]string{g.Channels, g.Regions, g.Whitelist} {
			for _, e := range list {
				if e == "" || strings.ContainsAny(e, ", \n\t，") {
					t.Fatalf("entry %q", e)
				}
			}
		}
	})
}

func TestYuan(t *testing.T) {
	for fen, want := range map[int64]string{0: "0.00", 5: "0.05", 123456: "1234.56", -101: "-1.01"} {
		if got := portal.Yuan(fen); got != want {
			t.Errorf("Yuan(%d) = %q, want %q", fen, got, want)
		}
	}
}
