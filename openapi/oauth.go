package openapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/marketplace"
	wire "github.com/jifu-open/jifu/sdk/openapi"
)

// OAuth2 lifespans.
const (
	DefaultAuthorizeCodeLifespan = 10 * time.Minute
	AccessTokenLifespan          = time.Hour
	RefreshTokenLifespan         = 30 * 24 * time.Hour
)

// oauthServer is the OAuth2 authorization server: authorization code and
// implicit grants at /oauth2/authorize, the token endpoint with client
// authentication (client_secret_basic or _post) at /oauth2/token,
// refresh (scope may only narrow) and revocation at /oauth2/revoke.
type oauthServer struct {
	s        *Server
	store    *store
	provider fosite.OAuth2Provider
}

// secretHasher compares a client secret with the app's live secrets
// (several during a rotation), kept newline-separated in the client.
type secretHasher struct{}

func (secretHasher) Compare(_ context.Context, hash, data []byte) error {
	ok := 0
	for _, h := range strings.Split(string(hash), "\n") {
		ok |= subtle.ConstantTimeCompare([]byte(h), data)
	}
	if ok != 1 || len(data) == 0 {
		return fosite.ErrInvalidClient
	}
	return nil
}

func (secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) { return data, nil }

func newOAuth(s *Server) (*oauthServer, error) {
	secret := s.cfg.OAuthSecret
	if len(secret) < 32 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "openapi: OAuthSecret must be at least 32 bytes")
	}
	codeLife := s.cfg.AuthorizeCodeLifespan
	if codeLife <= 0 {
		codeLife = DefaultAuthorizeCodeLifespan
	}
	cfg := &fosite.Config{
		AuthorizeCodeLifespan: codeLife,
		AccessTokenLifespan:   AccessTokenLifespan,
		RefreshTokenLifespan:  RefreshTokenLifespan,
		GlobalSecret:          secret,
		RefreshTokenScopes:    []string{}, // every code exchange gets a refresh token
		ScopeStrategy:         fosite.ExactScopeStrategy,
		SanitationWhiteList:   []string{"redirect_uri"},
		ClientSecretsHasher:   secretHasher{},
		TokenURL:              "/oauth2/token",
	}
	st := &store{pool: s.cfg.Pool, market: s.cfg.Market}
	p := compose.Compose(cfg, st, compose.NewOAuth2HMACStrategy(cfg),
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2AuthorizeImplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2TokenIntrospectionFactory,
	)
	return &oauthServer{s: s, store: st, provider: p}, nil
}

func (o *oauthServer) routes(r chi.Router) {
	r.Get("/oauth2/authorize", o.authorize)
	r.Post("/oauth2/authorize", o.authorize)
	r.Post("/oauth2/token", o.token)
	r.Post("/oauth2/revoke", o.revoke)
}

// session returns the store user logged in on r, or 0.
func (s *Server) session(r *http.Request) *marketplace.Session {
	c, err := r.Cookie(s.cfg.SessionCookie)
	if err != nil {
		return nil
	}
	sess, err := s.cfg.Market.Authenticate(r.Context(), c.Value)
	if err != nil || sess.Kind != marketplace.SessionUser {
		return nil
	}
	return sess
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
button{font-size:1rem;padding:.5rem 1rem;margin-right:.5rem}li{margin:.3rem 0}</style></head>
<body><h1>{{.Title}}</h1>
{{if .Login}}<p data-testid="login-needed">Log in to the store to continue.</p>
<p><a data-testid="qr-login" href="/login/qr?next={{.Next}}">Log in by scanning a QR code (扫码登陆)</a></p>
{{else}}<p data-testid="consent-app"><strong>{{.App}}</strong> asks for:</p>
<ul>{{range .Scopes}}<li data-testid="scope">{{.Name}}{{if .Description}}: {{.Description}}{{end}}</li>{{end}}</ul>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button data-testid="approve" name="decision" value="approve">Allow</button>
<button data-testid="deny" name="decision" value="deny">Deny</button>
</form>{{end}}
</body></html>`))

type pageData struct {
	Title, App, CSRF, Next string
	Action                 template.URL
	Login                  bool
	Scopes                 []marketplace.ScopeInfo
}

func renderPage(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, d)
}

// authorize is the authorization endpoint. GET shows the marketplace's
// consent screen to the logged-in store user (or asks to log in); POST
// carries the decision. Scopes the user granted the app before are not
// asked again.
func (o *oauthServer) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := o.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		o.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	sess := o.s.session(r)
	if sess == nil {
		renderPage(w, http.StatusOK, pageData{Title: "Log in", Login: true, Next: r.URL.RequestURI()})
		return
	}
	key, err := o.s.cfg.Market.LookupKey(ctx, ar.GetClient().GetID())
	if err != nil {
		o.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrInvalidClient)
		return
	}
	screen, err := o.s.cfg.Market.ConsentScreen(ctx, sess.UserID, key.Slug)
	if err != nil {
		o.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The app is not available to this user."))
		return
	}
	requested := ar.GetRequestedScopes()
	var pending []marketplace.ScopeInfo
	for _, sc := range requested {
		i := slices.IndexFunc(screen.Scopes, func(si marketplace.ScopeInfo) bool { return si.Name == sc })
		if i < 0 {
			o.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrInvalidScope.WithHintf("The app does not ask users for scope %q.", sc))
			return
		}
		if !screen.Scopes[i].Granted {
			pending = append(pending, screen.Scopes[i])
		}
	}
	if r.Method == http.MethodPost {
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRF)) != 1 {
			o.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrRequestForbidden.WithHint("The form is stale; open the page again."))
			return
		}
		if r.PostFormValue("decision") != "approve" {
			o.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
			return
		}
		if err := o.s.cfg.Market.Install(ctx, sess.UserID, key.Slug, requested); err != nil {
			o.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
			return
		}
		pending = nil
	}
	if len(pending) > 0 {
		renderPage(w, http.StatusOK, pageData{Title: "Authorize " + screen.App.Name, App: screen.App.Name, CSRF: sess.CSRF,
			Action: template.URL(r.URL.RequestURI()), Scopes: pending})
		return
	}
	for _, sc := range requested {
		ar.GrantScope(sc)
	}
	resp, err := o.provider.NewAuthorizeResponse(ctx, ar, &fosite.DefaultSession{Subject: marketplace.UserRef(sess.UserID)})
	if err != nil {
		o.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	o.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// token is the token endpoint. For a refresh, a scope parameter may only
// narrow the grant: a scope outside it is invalid_scope, and nothing is
// issued or rotated.
func (o *oauthServer) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := o.provider.NewAccessRequest(ctx, r, &fosite.DefaultSession{})
	if err != nil {
		o.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("refresh_token") {
		if asked := fosite.RemoveEmpty(strings.Split(r.PostForm.Get("scope"), " ")); len(asked) > 0 {
			granted := ar.GetGrantedScopes()
			for _, sc := range asked {
				if !granted.Has(sc) {
					o.provider.WriteAccessError(ctx, w, ar, fosite.ErrInvalidScope.WithHintf("Scope %q was not granted: a refresh may only narrow the scope.", sc))
					return
				}
			}
			if req, ok := ar.(*fosite.AccessRequest); ok {
				req.GrantedScope = fosite.Arguments(asked)
			}
		}
	}
	resp, err := o.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		o.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	o.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// revoke is the revocation endpoint (RFC 7009), with client
// authentication.
func (o *oauthServer) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	o.provider.WriteRevocationResponse(ctx, w, o.provider.NewRevocationRequest(ctx, r))
}

type tokenInfo struct {
	subject string
	scopes  []string
}

// introspect checks an access token of the app appKey.
func (o *oauthServer) introspect(ctx context.Context, token, appKey string) (*tokenInfo, error) {
	if token == "" {
		return nil, jifu.Errorf(CodeTokenInvalid, "openapi: the %s header is required", AccessTokenHeader)
	}
	sess := &fosite.DefaultSession{}
	use, ar, err := o.provider.IntrospectToken(ctx, token, fosite.AccessToken, sess)
	if err != nil || use != fosite.AccessToken {
		if err != nil && !errors.Is(err, fosite.ErrRequestUnauthorized) && !errors.Is(err, fosite.ErrTokenExpired) &&
			!errors.Is(err, fosite.ErrNotFound) && !errors.Is(err, fosite.ErrInactiveToken) && !errors.Is(err, fosite.ErrInvalidTokenFormat) {
			o.s.log.WarnContext(ctx, "openapi: token introspection", "err", err)
		}
		return nil, jifu.Errorf(CodeTokenInvalid, "openapi: the access token is unknown, expired or revoked")
	}
	if ar.GetClient().GetID() != appKey {
		return nil, jifu.Errorf(CodeTokenInvalid, "openapi: the access token was issued to another app")
	}
	return &tokenInfo{subject: ar.GetSession().GetSubject(), scopes: ar.GetGrantedScopes()}, nil
}

func (s *Server) setOAuthClient(w http.ResponseWriter, r *http.Request) {
	var in wire.OAuthClient
	if err := decode(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(in.RedirectURIs) == 0 || len(in.RedirectURIs) > 10 {
		s.writeError(w, r, jifu.Errorf(jifu.CodeInvalid, "openapi: 1..10 redirect_uris"))
		return
	}
	for _, u := range in.RedirectURIs {
		p, err := url.Parse(u)
		if err != nil || !p.IsAbs() || p.Fragment != "" || len(u) > 512 || (p.Scheme != "https" && !(p.Scheme == "http" && isLoopback(p.Hostname()))) {
			s.writeError(w, r, jifu.Errorf(jifu.CodeInvalid, "openapi: redirect URI %q must be an absolute https URL without fragment (http only on loopback)", u))
			return
		}
	}
	_, err := s.cfg.Pool.Exec(r.Context(), `INSERT INTO oauth_clients (app_key, redirect_uris) VALUES ($1, $2)
		ON CONFLICT (app_key) DO UPDATE SET redirect_uris = EXCLUDED.redirect_uris, updated_at = now()`, caller(r).Key.AppKey, in.RedirectURIs)
	if err != nil {
		s.writeError(w, r, jifu.Errorf(jifu.CodeUnavailable, "openapi: save client: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *Server) getOAuthClient(w http.ResponseWriter, r *http.Request) {
	c, err := s.oauth.store.GetClient(r.Context(), caller(r).Key.AppKey)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	uris := c.GetRedirectURIs()
	if uris == nil {
		uris = []string{}
	}
	writeJSON(w, http.StatusOK, wire.OAuthClient{RedirectURIs: uris})
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
