// Package layout holds what every page of the portal, the reviewer pages
// and the store share: the page shell with its navigation, the CSRF field,
// flash messages and the error page.
//
//	layout.Base(layout.Page{Title: "Apps", Area: layout.AreaPortal, CSRF: tok}).Render(ctx, w)
package layout

// HTMXPath is where the htmx script (htmx.org 2.0.11, 0BSD, committed
// under web/static) is served. Pages work without it; it refreshes parts
// of some pages in place.
const HTMXPath = "/static/htmx-2.0.11.min.js"

// Areas of the site; each has its own navigation.
const (
	AreaPortal = "portal"
	AreaReview = "review"
	AreaStore  = "store"
)

// Page is what the shell needs to know about the page and its viewer.
type Page struct {
	Title  string
	Area   string
	Who    string // the logged-in name; "" when nobody is
	Role   string // staff role of Who (developer, reviewer, admin, risk)
	CSRF   string // the token the page's forms carry
	Flash  string // a one-line notice on top (from ?flash=)
	Error  string // a one-line error on top
	Outbox bool   // the local SMS outbox is in use: link to it
}

// NavLink is one entry of an area's navigation.
type NavLink struct {
	Href, Label, TestID string
}

// Nav returns the links of the page's area for its viewer.
func (p Page) Nav() []NavLink {
	switch p.Area {
	case AreaPortal, AreaReview:
		if p.Who == "" {
			return []NavLink{{"/portal/login", "Log in", "nav-login"}, {"/portal/register", "Register", "nav-register"}}
		}
		var l []NavLink
		if p.Role == "developer" {
			l = append(l, NavLink{"/portal/apps", "My apps", "nav-apps"}, NavLink{"/portal/account", "Account", "nav-account"})
		}
		if p.Role == "admin" {
			l = append(l, NavLink{"/portal/developers", "Developers", "nav-developers"})
		}
		if p.Role == "admin" || p.Role == "risk" {
			l = append(l, NavLink{"/portal/users", "Users", "nav-users"}, NavLink{"/risk/", "Risk rules", "nav-risk"})
		}
		if p.Role == "reviewer" || p.Role == "admin" {
			l = append(l, NavLink{"/review/", "Review queue", "nav-review"})
		}
		if p.Role == "admin" || p.Role == "risk" || p.Role == "reviewer" {
			l = append(l, NavLink{"/portal/audit", "Audit log", "nav-audit"})
		}
		if p.Outbox {
			l = append(l, NavLink{"/portal/outbox", "SMS outbox", "nav-outbox"})
		}
		return l
	default:
		l := []NavLink{{"/store/", "Catalog", "nav-catalog"}}
		if p.Who != "" {
			l = append(l, NavLink{"/store/my", "My apps", "nav-my"})
		} else {
			l = append(l, NavLink{"/store/login", "Log in", "nav-store-login"})
		}
		return l
	}
}

// LogoutAction is where the area's logout form posts.
func (p Page) LogoutAction() string {
	if p.Area == AreaStore {
		return "/store/logout"
	}
	return "/portal/logout"
}

// Brand is the site name shown for the area.
func (p Page) Brand() string {
	switch p.Area {
	case AreaStore:
		return "即付 App Store"
	case AreaReview:
		return "即付 Review"
	}
	return "即付 Developer Portal"
}
