// Package openapi is the platform's signed server-to-server API under
// /openapi/v1/..., its OpenAPI 3 document at /openapi.json, the OAuth2
// authorization server under /oauth2/... (ory/fosite, storage in
// PostgreSQL) and the QR-code login (扫码登陆) under /login/qr/....
//
// Every /openapi/v1 call is signed with the app's APPKEY and SECRET
// (sdk/opensign; docs/OPENAPI.md). The middleware refuses, each with its
// own stable code and without side effects: a missing or malformed
// signature header, a timestamp too old or too far ahead, an unknown key,
// a source address outside the app's IP whitelist, a wrong signature, an
// app over its service level's rate, and a replayed nonce. A sandbox key
// reaches only sandbox data: its payments and callbacks live under the
// namespace "sandbox:<slug>", a production key's under "<slug>".
//
//	srv, err := openapi.New(openapi.Config{Market: svc, Payments: pay, Deliveries: ob,
//		Nonces: nonce.New(pool), Limiter: lim, Pool: pool})
//	mux.Handle("/", srv.Handler(next))
package openapi

import (
	"context"
	"encoding/json"
	"github.com/jifu-open/jifu/web/respond"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/host/ratelimit"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// Market is what the open API needs of the marketplace
// (*marketplace.Service implements it).
type Market interface {
	LookupKey(ctx context.Context, appKey string) (*marketplace.KeyInfo, error)
	AppLevel(ctx context.Context, appID int64) (string, error)
	App(ctx context.Context, by marketplace.Actor, id int64) (*marketplace.App, error)
	UploadVersion(ctx context.Context, by marketplace.Actor, appID int64, wasm, manifestJSON []byte) (*marketplace.Version, error)
	SubmitVersion(ctx context.Context, by marketplace.Actor, versionID int64) error
	User(ctx context.Context, id int64) (*marketplace.User, error)
	Authenticate(ctx context.Context, token string) (*marketplace.Session, error)
	ConsentScreen(ctx context.Context, userID int64, slug string) (*marketplace.ConsentScreen, error)
	Install(ctx context.Context, userID int64, slug string, scopes []string) error
	OpenUserSession(ctx context.Context, userID int64) (string, *marketplace.Session, error)
}

// Payments is the money core as the open API uses it (*payment.Service).
type Payments interface {
	Create(ctx context.Context, r payment.CreateRequest) (payment.Intent, error)
	Get(ctx context.Context, app, id string) (payment.Intent, error)
	Refund(ctx context.Context, app string, req payment.RefundRequest) (payment.Refund, error)
	Refunds(ctx context.Context, app, id string) ([]payment.Refund, error)
}

// Deliveries lists and replays callback deliveries (*outbox.Outbox).
type Deliveries interface {
	List(ctx context.Context, f outbox.ListFilter) ([]outbox.Delivery, error)
	Replay(ctx context.Context, app, eventID, sink string) error
}

// Config holds a Server's dependencies. Market and Pool are required.
type Config struct {
	Market     Market
	Pool       *pgxpool.Pool // the OAuth2 and QR-login tables (migration set "oauth")
	Payments   Payments      // nil: the payment routes answer unavailable
	Deliveries Deliveries    // nil: the callback routes answer unavailable
	Nonces     opensign.Nonces
	Limiter    *ratelimit.Limiter // nil: DefaultLevels
	Window     time.Duration      // opensign.DefaultWindow when 0
	MaxBody    int64              // 1 MiB when 0; uploads of versions get MaxUpload
	MaxUpload  int64              // 32 MiB when 0
	Now        func() time.Time
	Logger     *slog.Logger
	// SessionCookie names the store's session cookie ("jifu_session").
	SessionCookie string
	// AuthorizeCodeLifespan is how long an authorization code lives (10
	// minutes when 0); tests shorten it.
	AuthorizeCodeLifespan time.Duration
	// QRLifespan is how long a login QR code waits for approval (2 minutes
	// when 0).
	QRLifespan time.Duration
	// OAuthSecret is the 32-byte HMAC key of OAuth2 tokens (required for
	// the OAuth2 routes).
	OAuthSecret []byte
	// SecureCookies marks the cookies the QR login sets Secure.
	SecureCookies bool
}

// Server serves the open API, the OAuth2 server and the QR login.
type Server struct {
	cfg     Config
	limiter *ratelimit.Limiter
	now     func() time.Time
	log     *slog.Logger
	oauth   *oauthServer
	qr      *qrLogin
}

// DefaultLevels are the rate limits per service level (calls a second
// sustained, and burst).
func DefaultLevels() map[string]ratelimit.Level {
	return map[string]ratelimit.Level{
		marketplace.LevelBasic:    {Rate: 5, Burst: 10},
		marketplace.LevelStandard: {Rate: 20, Burst: 40},
		marketplace.LevelAdvanced: {Rate: 50, Burst: 100},
		marketplace.LevelFull:     {Rate: 200, Burst: 400},
	}
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Market == nil || cfg.Pool == nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "openapi: Market and Pool are required")
	}
	s := &Server{cfg: cfg, limiter: cfg.Limiter, now: cfg.Now, log: cfg.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.Window <= 0 {
		s.cfg.Window = opensign.DefaultWindow
	}
	if s.cfg.MaxBody <= 0 {
		s.cfg.MaxBody = 1 << 20
	}
	if s.cfg.MaxUpload <= 0 {
		s.cfg.MaxUpload = 32 << 20
	}
	if s.cfg.SessionCookie == "" {
		s.cfg.SessionCookie = "jifu_session"
	}
	if s.limiter == nil {
		l, err := ratelimit.New(ratelimit.Config{Levels: DefaultLevels(), Default: marketplace.LevelBasic, Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		s.limiter = l
	}
	var err error
	if s.oauth, err = newOAuth(s); err != nil {
		return nil, err
	}
	s.qr = newQRLogin(s)
	return s, nil
}

// errorBody is the JSON body of every refusal.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Status maps an error code to the open API's HTTP status: its own codes
// here, every other through web/respond.Status.
func Status(code string) int {
	if st := opensign.Status(code); st != 0 {
		return st
	}
	switch code {
	case CodeTimestampFuture, CodeTokenInvalid:
		return http.StatusUnauthorized
	case CodeIPDenied, CodeScopeMissing, CodeEnvironment, jifu.CodeDenied:
		return http.StatusForbidden
	}
	return respond.Status(code) // the generic codes as every web answer maps them
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var body errorBody
	body.Error.Code = jifu.ErrorCode(err)
	body.Error.Message = jifu.ErrorMessage(err)
	st := Status(body.Error.Code)
	if st >= 500 {
		s.log.WarnContext(r.Context(), "openapi: request failed", "method", r.Method, "path", r.URL.Path, "code", body.Error.Code, "err", err)
	}
	writeJSON(w, st, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
