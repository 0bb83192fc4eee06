package store

import (
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
)

// CatalogView is the store's front page: apps by category.
type CatalogView struct {
	Page       layout.Page
	Category   string
	Categories []string
	Listings   []marketplace.Listing
}

// LoginView is the SMS sign-in: first the phone, then the code.
type LoginView struct {
	Page     layout.Page
	Phone    string
	CodeSent bool
	Next     string
	Outbox   bool // the code is in the portal's SMS outbox
}

// AppView is an app's store page.
type AppView struct {
	Page      layout.Page
	Listing   *marketplace.Listing
	LoggedIn  bool
	Installed bool
}

// ConsentView is the consent screen: the scopes the app asks for.
type ConsentView struct {
	Page   layout.Page
	Screen *marketplace.ConsentScreen
}

// MyAppsView lists the user's apps with their grants.
type MyAppsView struct {
	Page layout.Page
	User *marketplace.User
	Apps []marketplace.InstalledApp
}

// ConsentRequiredView is what /apps/{slug}/ shows a user who has not
// granted the app access (or revoked it).
type ConsentRequiredView struct {
	Page layout.Page
	Slug string
	Name string
}
