package marketplace

import (
	"context"
	"testing"
)

// A self-test's synthetic user holds exactly the version's scopes, for
// that app, while the run lasts (no database involved).
func TestSyntheticUser(t *testing.T) {
	ctx := context.Background()
	c := NewConsents(nil)
	user, release := c.synthetic("shop", []string{"storage", "user.basic"})
	check := func(app, scope string, want bool) {
		t.Helper()
		ok, err := c.Consented(ctx, app, user, scope)
		if err != nil || ok != want {
			t.Fatalf("Consented(%s, %s, %s) = %v, %v; want %v", app, user, scope, ok, err, want)
		}
	}
	check("shop", "user.basic", true)
	check("shop", "storage", true)
	check("shop", "payment.create", false)
	check("other", "user.basic", false)
	if _, ok := ParseUserRef(user); ok {
		t.Fatalf("synthetic user %q parses as a store user", user)
	}
	release()
	check("shop", "user.basic", false)
}
