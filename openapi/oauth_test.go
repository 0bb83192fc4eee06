package openapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/openapi"
)

const redirectURI = "http://127.0.0.1:9/cb"

// oauthApp is a released app asking users for user.basic and
// user.realname, with its redirect URI registered through the open API.
func (e *env) oauthApp() *app {
	e.t.Helper()
	a := e.newApp(marketplace.LevelAdvanced, "127.0.0.1/32", "::1/128")
	e.release(a, `,"user.basic","user.realname"`)
	if err := e.client(a, true).SetRedirectURIs(context.Background(), []string{redirectURI}); err != nil {
		e.t.Fatal(err)
	}
	return a
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// authorize runs the authorization endpoint as the logged-in user with
// session token, approving the consent screen when it shows, and returns
// the final redirect's Location (or the error answer's status and body).
func (e *env) authorize(session string, q url.Values) (loc *url.URL, status int, body string) {
	e.t.Helper()
	hc := noRedirect()
	do := func(method string, form url.Values) *http.Response {
		var r io.Reader
		if form != nil {
			r = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, e.srv.URL+"/oauth2/authorize?"+q.Encode(), r)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.AddCookie(&http.Cookie{Name: "jifu_session", Value: session})
		resp, err := hc.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		return resp
	}
	resp := do("GET", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 {
		m := csrfRE.FindSubmatch(b)
		if m == nil {
			e.t.Fatalf("no consent form in %s", b)
		}
		resp = do("POST", url.Values{"csrf": {string(m[1])}, "decision": {"approve"}})
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if resp.StatusCode/100 != 3 {
		return nil, resp.StatusCode, string(b)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	return loc, resp.StatusCode, ""
}

func authQuery(a *app, responseType, scope string) url.Values {
	return url.Values{"response_type": {responseType}, "client_id": {a.prod.AppKey}, "redirect_uri": {redirectURI},
		"scope": {scope}, "state": {"state-" + unique("")}}
}

type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
	status       int
}

// tokenCall posts form to the token endpoint with the app's production
// key as client credentials (secret overrides the secret when set).
func (e *env) tokenCall(a *app, form url.Values, secret string) tokenAnswer {
	e.t.Helper()
	return e.clientCall(a, "/oauth2/token", form, secret)
}

func (e *env) clientCall(a *app, path string, form url.Values, secret string) tokenAnswer {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret == "" {
		secret = string(a.prod.Secret)
	}
	req.SetBasicAuth(url.QueryEscape(a.prod.AppKey), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out tokenAnswer
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	out.status = resp.StatusCode
	return out
}

// codeFlow authorizes scope and exchanges the code.
func (e *env) codeFlow(a *app, session, scope string) (code string, tok tokenAnswer) {
	e.t.Helper()
	q := authQuery(a, "code", scope)
	loc, st, body := e.authorize(session, q)
	if loc == nil {
		e.t.Fatalf("authorize: %d %s", st, body)
	}
	code = loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != q.Get("state") || !strings.HasPrefix(loc.String(), redirectURI) {
		e.t.Fatalf("redirect %s", loc)
	}
	tok = e.tokenCall(a, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}, "")
	if tok.status != 200 || tok.AccessToken == "" || tok.RefreshToken == "" {
		e.t.Fatalf("token: %+v", tok)
	}
	return code, tok
}

func (e *env) userInfo(a *app, token string) (*openapiUser, error) {
	u, err := e.client(a, true).UserInfo(context.Background(), token)
	if err != nil {
		return nil, err
	}
	return &openapiUser{OpenID: u.OpenID, Phone: u.Phone, RealName: u.RealName, Scopes: u.Scopes}, nil
}

type openapiUser struct {
	OpenID, Phone, RealName string
	Scopes                  []string
}

func TestOAuthCodeFlow(t *testing.T) {
	e := newEnv(t)
	a := e.oauthApp()
	session, u := e.login("13800138001")

	t.Run("full flow, user info masked per scope", func(t *testing.T) {
		_, tok := e.codeFlow(a, session, "user.basic")
		if tok.Scope != "user.basic" {
			t.Fatalf("scope %q", tok.Scope)
		}
		info, err := e.userInfo(a, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if info.OpenID != u.Ref() || info.Phone != "138****8001" || info.RealName != "" {
			t.Fatalf("user info %+v", info)
		}
		// Another app cannot use the token.
		b := e.oauthApp()
		_, err = e.userInfo(b, tok.AccessToken)
		wantAPIError(t, err, 401, openapi.CodeTokenInvalid)
	})

	t.Run("code replay revokes the tokens issued from it", func(t *testing.T) {
		code, tok := e.codeFlow(a, session, "user.basic")
		again := e.tokenCall(a, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}, "")
		if again.status != 400 || again.Error != "invalid_grant" || again.AccessToken != "" {
			t.Fatalf("replayed code: %+v", again)
		}
		_, err := e.userInfo(a, tok.AccessToken)
		wantAPIError(t, err, 401, openapi.CodeTokenInvalid)
		if r := e.tokenCall(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, ""); r.status == 200 {
			t.Fatalf("refresh token survived the replay: %+v", r)
		}
	})

	t.Run("redirect URI mismatch", func(t *testing.T) {
		q := authQuery(a, "code", "user.basic")
		q.Set("redirect_uri", "http://127.0.0.1:9/elsewhere")
		loc, st, _ := e.authorize(session, q)
		if loc != nil || st != 400 {
			t.Fatalf("unregistered redirect: %v %d", loc, st)
		}
		// A code asked for with the registered URI cannot be exchanged
		// with another one.
		q = authQuery(a, "code", "user.basic")
		loc, _, _ = e.authorize(session, q)
		r := e.tokenCall(a, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
			"redirect_uri": {"http://127.0.0.1:9/elsewhere"}}, "")
		if r.status != 400 || r.AccessToken != "" {
			t.Fatalf("exchange with another redirect: %+v", r)
		}
	})

	t.Run("a code is bound to its client", func(t *testing.T) {
		other := e.oauthApp()
		loc, _, _ := e.authorize(session, authQuery(a, "code", "user.basic"))
		form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirectURI}}
		if r := e.tokenCall(other, form, ""); r.status != 400 || r.Error != "invalid_grant" || r.AccessToken != "" {
			t.Fatalf("another client exchanged the code: %+v", r)
		}
	})

	t.Run("client authentication", func(t *testing.T) {
		q := authQuery(a, "code", "user.basic")
		loc, _, _ := e.authorize(session, q)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirectURI}}
		if r := e.tokenCall(a, form, "wrong secret"); r.status != 401 || r.Error != "invalid_client" {
			t.Fatalf("wrong secret: %+v", r)
		}
		// The refused attempt did not use the code up.
		if r := e.tokenCall(a, form, ""); r.status != 200 {
			t.Fatalf("then the right secret: %+v", r)
		}
	})

	t.Run("refresh may only narrow the scope", func(t *testing.T) {
		_, tok := e.codeFlow(a, session, "user.basic")
		wide := e.tokenCall(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
			"scope": {"user.basic user.realname"}}, "")
		if wide.status != 400 || wide.Error != "invalid_scope" || wide.AccessToken != "" {
			t.Fatalf("wider scope: %+v", wide)
		}
		// Nothing was rotated: the access token and refresh token still work.
		if _, err := e.userInfo(a, tok.AccessToken); err != nil {
			t.Fatal(err)
		}
		_, both := e.codeFlow(a, session, "user.basic user.realname")
		narrow := e.tokenCall(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {both.RefreshToken}, "scope": {"user.basic"}}, "")
		if narrow.status != 200 || narrow.Scope != "user.basic" {
			t.Fatalf("narrower scope: %+v", narrow)
		}
		info, err := e.userInfo(a, narrow.AccessToken)
		if err != nil || len(info.Scopes) != 1 || info.Scopes[0] != "user.basic" {
			t.Fatalf("narrowed token: %+v %v", info, err)
		}
		// The used refresh token and its old access token are done.
		if r := e.tokenCall(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {both.RefreshToken}}, ""); r.status == 200 {
			t.Fatalf("a used refresh token worked again: %+v", r)
		}
	})

	t.Run("revocation", func(t *testing.T) {
		_, tok := e.codeFlow(a, session, "user.basic")
		if r := e.clientCall(a, "/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, ""); r.status != 200 {
			t.Fatalf("revoke: %+v", r)
		}
		_, err := e.userInfo(a, tok.AccessToken)
		wantAPIError(t, err, 401, openapi.CodeTokenInvalid)
		if r := e.clientCall(a, "/oauth2/revoke", url.Values{"token": {tok.RefreshToken}}, ""); r.status != 200 {
			t.Fatalf("revoke refresh: %+v", r)
		}
		if r := e.tokenCall(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, ""); r.status == 200 {
			t.Fatalf("revoked refresh token worked: %+v", r)
		}
	})

	t.Run("implicit flow", func(t *testing.T) {
		q := authQuery(a, "token", "user.basic")
		loc, st, body := e.authorize(session, q)
		if loc == nil {
			t.Fatalf("implicit: %d %s", st, body)
		}
		frag, _ := url.ParseQuery(loc.Fragment)
		if frag.Get("access_token") == "" || frag.Get("refresh_token") != "" || frag.Get("state") != q.Get("state") {
			t.Fatalf("fragment %q", loc.Fragment)
		}
		info, err := e.userInfo(a, frag.Get("access_token"))
		if err != nil || info.OpenID != u.Ref() {
			t.Fatalf("implicit token: %+v %v", info, err)
		}
	})

	t.Run("consent denied, not logged in", func(t *testing.T) {
		fresh, _ := e.login("13800138002")
		q := authQuery(a, "code", "user.basic")
		hc := noRedirect()
		req, _ := http.NewRequest("POST", e.srv.URL+"/oauth2/authorize?"+q.Encode(), strings.NewReader("csrf=forged&decision=approve"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: "jifu_session", Value: fresh})
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if l := resp.Header.Get("Location"); strings.Contains(l, "code=") {
			t.Fatalf("a forged form got a code: %s", l)
		}
		resp, err = http.Get(e.srv.URL + "/oauth2/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `data-testid="login-needed"`) {
			t.Fatalf("anonymous: %s", b)
		}
	})
}

func TestOAuthExpiredCode(t *testing.T) {
	e := newEnv(t, func(c *openapi.Config) { c.AuthorizeCodeLifespan = time.Second })
	a := e.oauthApp()
	session, _ := e.login("13800138003")
	loc, st, body := e.authorize(session, authQuery(a, "code", "user.basic"))
	if loc == nil {
		t.Fatalf("authorize: %d %s", st, body)
	}
	time.Sleep(2100 * time.Millisecond)
	r := e.tokenCall(a, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirectURI}}, "")
	if r.status != 400 || r.Error != "invalid_grant" || r.AccessToken != "" {
		t.Fatalf("expired code: %+v", r)
	}
}
