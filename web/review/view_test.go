package review_test

import (
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/review"
	"github.com/jifu-open/jifu/web/webtest"
)

func TestQueue(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	p := layout.Page{Title: "Review queue", Area: layout.AreaReview, Who: "Rita", Role: "reviewer", CSRF: "tok"}
	v := review.QueueView{Page: p, Versions: []*marketplace.Version{
		{ID: 9, Slug: "loan", Version: "2.1.0", Manifest: &manifest.Manifest{Scopes: []string{"credit.line", "storage"}}, CreatedAt: at,
			Report: marketplace.CheckReport{Passed: true}},
		{ID: 11, Slug: "bills", Version: "0.3.0", Manifest: &manifest.Manifest{}, CreatedAt: at, Report: marketplace.CheckReport{Passed: false}},
	}}
	doc := webtest.Render(t, review.Queue(v))
	row := webtest.One(t, doc, "queue-loan-2.1.0")
	if got := webtest.Text(row); got != "loan 2.1.0 passed credit.line, storage 2026-12-01 09:30 UTC" {
		t.Errorf("row = %q", got)
	}
	if got := webtest.Attr(webtest.One(t, doc, "review-link-loan"), "href"); got != "/review/versions/9" {
		t.Errorf("link %q", got)
	}
	if got := webtest.Text(webtest.One(t, doc, "queue-bills-0.3.0")); got != "bills 0.3.0 failed — 2026-12-01 09:30 UTC" {
		t.Errorf("row = %q", got)
	}
	webtest.Golden(t, "queue", webtest.HTML(t, review.Queue(v)))
	v.Versions = nil
	webtest.One(t, webtest.Render(t, review.Queue(v)), "queue-empty")
}
