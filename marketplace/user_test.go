package marketplace_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
)

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// lastCode reads the newest login code sent to phone from the outbox.
func (e *env) lastCode(phone string) string {
	e.t.Helper()
	msgs, err := e.outbox.List(context.Background(), notify.Filter{To: phone, Limit: 1})
	if err != nil || len(msgs) == 0 {
		e.t.Fatalf("no SMS to %s: %v", phone, err)
	}
	m := codeRE.FindStringSubmatch(msgs[0].Body)
	if m == nil {
		e.t.Fatalf("no code in %q", msgs[0].Body)
	}
	return m[1]
}

func TestLoginWithCode(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	phone := uniquePhone()
	wantCode(t, e.svc.RequestLoginCode(ctx, "12345"), jifu.CodeInvalid)
	if err := e.svc.RequestLoginCode(ctx, phone); err != nil {
		t.Fatal(err)
	}
	code := e.lastCode(phone)
	// A second code at once is refused by the channel's rate limit, and the
	// first code stays valid.
	wantCode(t, e.svc.RequestLoginCode(ctx, phone), jifu.CodeLimit)
	if got := e.lastCode(phone); got != code {
		t.Fatal("a refused request replaced the code")
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	_, _, _, err := e.svc.LoginWithCode(ctx, phone, wrong)
	wantCode(t, err, jifu.CodeDenied)
	token, sess, u, err := e.svc.LoginWithCode(ctx, phone, code)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Kind != marketplace.SessionUser || sess.UserID != u.ID || u.Phone != phone || u.Level != 0 {
		t.Fatalf("session %+v user %+v", sess, u)
	}
	got, err := e.svc.Authenticate(ctx, token)
	if err != nil || got.UserID != u.ID {
		t.Fatalf("authenticate %+v %v", got, err)
	}
	// The code is single-use.
	_, _, _, err = e.svc.LoginWithCode(ctx, phone, code)
	wantCode(t, err, jifu.CodeDenied)
}

func TestLoginCodeAttempts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	phone := uniquePhone()
	if err := e.svc.RequestLoginCode(ctx, phone); err != nil {
		t.Fatal(err)
	}
	code := e.lastCode(phone)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i := 0; i < marketplace.LoginCodeAttempts; i++ {
		_, _, _, err := e.svc.LoginWithCode(ctx, phone, wrong)
		wantCode(t, err, jifu.CodeDenied)
	}
	_, _, _, err := e.svc.LoginWithCode(ctx, phone, code)
	wantCode(t, err, jifu.CodeDenied) // void after too many wrong tries
}

func TestRealName(t *testing.T) {
	ctx := context.Background()
	registry := map[string]marketplace.RealNameRequest{}
	e := newEnv(t, func(c *marketplace.Config) { c.Verifier = marketplace.LocalVerifier{Registry: registry} })
	u, err := e.svc.EnsureUser(ctx, marketplace.System, uniquePhone())
	if err != nil {
		t.Fatal(err)
	}
	registry["11010519491231002X"] = marketplace.RealNameRequest{Name: "张三", IDNumber: "11010519491231002X", Phone: u.Phone}
	tests := []struct {
		name, who, id, code string
	}{
		{"bad checksum", "张三", "110105194912310021", jifu.CodeInvalid},
		{"short name", "张", "11010519491231002X", jifu.CodeInvalid},
		{"name mismatch", "李四", "11010519491231002X", jifu.CodeDenied},
		{"unknown id", "张三", "440524198001010013", jifu.CodeDenied},
	}
	for _, tt := range tests {
		_, err := e.svc.VerifyRealName(ctx, u.ID, tt.who, tt.id)
		wantCode(t, err, tt.code)
	}
	if got, _ := e.svc.User(ctx, u.ID); got.VerifiedAt != nil || got.Level != 0 {
		t.Fatalf("failed verifications changed the user: %+v", got)
	}
	got, err := e.svc.VerifyRealName(ctx, u.ID, "张三", "11010519491231002x")
	if err != nil {
		t.Fatal(err)
	}
	if got.Level != marketplace.LevelRealName || got.IDNumberMasked != "110105********002X" || got.RealName != "张三" || got.VerifiedAt == nil {
		t.Fatalf("verified user %+v", got)
	}
}

func TestConsents(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dev := e.newDeveloper(marketplace.LevelStandard)
	if err := e.svc.DecideDeveloper(ctx, e.admin, dev.DeveloperID, true, "ok"); err != nil {
		t.Fatal(err)
	}
	app, _ := e.newApp(dev)
	v, err := e.svc.UploadVersion(ctx, dev, app.ID, helloWasm(t), helloManifest(app.Slug, "1.0.0", `,"user.basic"`))
	if err != nil {
		t.Fatal(err, marketplace.Problems(err))
	}
	if err := e.svc.SubmitVersion(ctx, dev, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Approve(ctx, e.reviewer, v.ID, ""); err != nil {
		t.Fatal(err)
	}
	u, _ := e.svc.EnsureUser(ctx, marketplace.System, uniquePhone())
	_, err = e.svc.ConsentScreen(ctx, u.ID, app.Slug)
	wantCode(t, err, jifu.CodeNotFound) // not released yet
	if _, err := e.svc.StartRelease(ctx, dev, v.ID, marketplace.ReleasePlan{Percent: 100}); err != nil {
		t.Fatal(err)
	}
	cs, err := e.svc.ConsentScreen(ctx, u.ID, app.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if !cs.Pending() || len(cs.Scopes) != 2 || cs.Scopes[0].Name != "storage" || !cs.Scopes[0].Granted || cs.Scopes[1].Granted || !cs.Scopes[1].NeedsConsent {
		t.Fatalf("consent screen %+v", cs.Scopes)
	}
	ok, _ := e.consents.Consented(ctx, app.Slug, u.Ref(), "user.basic")
	if ok {
		t.Fatal("consented before granting")
	}
	wantCode(t, e.svc.Install(ctx, u.ID, app.Slug, []string{"credit.line"}), jifu.CodeInvalid)
	if err := e.svc.Install(ctx, u.ID, app.Slug, []string{"user.basic"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.consents.Consented(ctx, app.Slug, u.Ref(), "user.basic"); !ok || err != nil {
		t.Fatalf("not consented after granting: %v", err)
	}
	if ok, _ := e.consents.Consented(ctx, "another-app", u.Ref(), "user.basic"); ok {
		t.Fatal("a grant leaked to another app")
	}
	mine, err := e.svc.MyApps(ctx, u.ID)
	if err != nil || len(mine) != 1 || mine[0].App.ID != app.ID || len(mine[0].Granted) != 1 {
		t.Fatalf("my apps %+v %v", mine, err)
	}
	if err := e.svc.Revoke(ctx, u.ID, app.Slug, nil, false); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.consents.Consented(ctx, app.Slug, u.Ref(), "user.basic"); ok {
		t.Fatal("consented after revoking")
	}
	for _, who := range []string{"", "u0", "x1", "selftest-123", "u" + "99999999999999999999"} {
		if ok, err := e.consents.Consented(ctx, app.Slug, who, "user.basic"); ok || err != nil {
			t.Fatalf("user %q: %v %v", who, ok, err)
		}
	}
}
