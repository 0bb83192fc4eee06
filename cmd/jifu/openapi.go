package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/nonce"
	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/host/ratelimit"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/openapi"
	"github.com/jifu-open/jifu/web/session"
)

// openAPISweepInterval is how often spent nonces, expired OAuth2 tokens
// and QR logins are deleted.
const openAPISweepInterval = time.Minute

// startOpenAPI builds the signed open API (/openapi/v1, /openapi.json),
// the OAuth2 server (/oauth2/...) and the QR login (/login/qr) over the
// marketplace, the payments and the callbacks' outbox, and starts the
// sweepers. JIFU_OPENAPI_RATES ("basic=5/10,standard=20/40") overrides the
// rate limits of service levels. wrap puts them in front of the platform's handler; stop ends
// the sweepers.
func (p *platform) startOpenAPI(ctx context.Context, e *env, ob *outbox.Outbox) (wrap func(http.Handler) http.Handler, stop func(), err error) {
	if p.market == nil {
		return nil, nil, jifu.Errorf(jifu.CodeInternal, "openapi: the marketplace is not started")
	}
	key, err := masterKey(e)
	if err != nil {
		return nil, nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("jifu.oauth2.v1"))
	levels, err := openapi.ParseLevels(e.getenv("JIFU_OPENAPI_RATES"))
	if err != nil {
		return nil, nil, jifu.Errorf(jifu.CodeInvalid, "JIFU_OPENAPI_RATES: %w", err)
	}
	limiter, err := ratelimit.New(ratelimit.Config{Levels: levels, Default: marketplace.LevelBasic})
	if err != nil {
		return nil, nil, err
	}
	nonces := nonce.New(p.pgpool)
	cfg := openapi.Config{
		Market:        p.market.svc,
		Pool:          p.pgpool,
		Payments:      p.pay.svc,
		Nonces:        nonces,
		Limiter:       limiter,
		Logger:        e.log,
		SessionCookie: session.UserCookie,
		OAuthSecret:   mac.Sum(nil),
	}
	if ob != nil {
		cfg.Deliveries = ob
	}
	srv, err := openapi.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { nonces.Run(ctx, openAPISweepInterval, e.log); done <- struct{}{} }()
	go func() {
		defer func() { done <- struct{}{} }()
		t := time.NewTicker(openAPISweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := openapi.PurgeExpired(ctx, p.pgpool); err != nil && ctx.Err() == nil {
					e.log.Warn("openapi: purge", "err", err)
				}
			}
		}
	}()
	stop = func() {
		cancel()
		<-done
		<-done
	}
	return srv.Handler, stop, nil
}

// callbackTargets finds an app's callback target in the marketplace's app
// registry first, then in the app's configuration (callback.url and
// callback.secret), for apps served with --dev-apps.
type callbackTargets []callback.Targets

func (c callbackTargets) Target(ctx context.Context, app string) (callback.Target, error) {
	var err error
	for _, t := range c {
		var tg callback.Target
		if tg, err = t.Target(ctx, app); jifu.ErrorCode(err) != jifu.CodeNotFound {
			return tg, err
		}
	}
	return callback.Target{}, err
}

// targetsOf returns the callback targets of the platform.
func (p *platform) targetsOf() callback.Targets {
	ct := callback.ConfigTargets{Config: p.config}
	if p.market == nil {
		return ct
	}
	return callbackTargets{marketplace.CallbackTargets{Service: p.market.svc}, ct}
}
