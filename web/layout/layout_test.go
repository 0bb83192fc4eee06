package layout_test

import (
	"testing"

	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/webtest"
)

func TestNav(t *testing.T) {
	tests := []struct {
		name    string
		page    layout.Page
		present []string
		absent  []string
	}{
		{"visitor", layout.Page{Area: layout.AreaPortal}, []string{"nav-login", "nav-register"}, []string{"nav-apps", "logout", "nav-outbox"}},
		{"developer", layout.Page{Area: layout.AreaPortal, Who: "D", Role: "developer"}, []string{"nav-apps", "logout"}, []string{"nav-review", "nav-audit"}},
		{"reviewer", layout.Page{Area: layout.AreaReview, Who: "R", Role: "reviewer"}, []string{"nav-review", "nav-audit"}, []string{"nav-apps"}},
		{"local SMS outbox", layout.Page{Area: layout.AreaPortal, Who: "D", Role: "developer", Outbox: true}, []string{"nav-outbox"}, nil},
		{"store visitor", layout.Page{Area: layout.AreaStore}, []string{"nav-catalog", "nav-store-login"}, []string{"nav-my", "logout"}},
		{"store user", layout.Page{Area: layout.AreaStore, Who: "u1"}, []string{"nav-my", "logout"}, []string{"nav-store-login"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := webtest.Render(t, layout.Base(tt.page))
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

func TestErrorPage(t *testing.T) {
	doc := webtest.Render(t, layout.ErrorPage(layout.Page{Area: layout.AreaStore}, 403, "denied", "<script>x</script>", "/store/", "Back"))
	if got := webtest.Attr(webtest.One(t, doc, "error-page"), "data-code"); got != "denied" {
		t.Errorf("code %q", got)
	}
	if got := webtest.Text(webtest.One(t, doc, "error-message")); got != "<script>x</script>" {
		t.Errorf("message %q (must be text, escaped)", got)
	}
	webtest.Golden(t, "error", webtest.HTML(t, layout.ErrorPage(layout.Page{Title: "Error", Area: layout.AreaStore}, 404, "not_found", "no such app", "/store/", "Back")))
}
