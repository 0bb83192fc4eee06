package marketplace

// Support for the open API (package openapi), the QR-code login and the
// callback sink: additions kept in their own file.

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/callback"
)

// AppLevel returns the service level granted to the developer of app id
// (the open API's rate limits follow it).
func (s *Service) AppLevel(ctx context.Context, appID int64) (string, error) {
	var level string
	err := s.pool.QueryRow(ctx, `SELECT d.level FROM mp_apps a JOIN mp_developers d ON d.id = a.developer_id WHERE a.id = $1`, appID).Scan(&level)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", jifu.Errorf(jifu.CodeNotFound, "marketplace: no app %d", appID)
	}
	if err != nil {
		return "", s.dbErr(ctx, "app level", err)
	}
	return level, nil
}

// OpenUserSession opens a new store session for user id, as a login would.
// The QR-code login calls it once an already logged-in session of the same
// user approved the code; nothing else should.
func (s *Service) OpenUserSession(ctx context.Context, userID int64) (string, *Session, error) {
	if _, err := s.User(ctx, userID); err != nil {
		return "", nil, err
	}
	return s.openSession(ctx, SessionUser, userID, s.cfg.UserSessionTTL, Actor{})
}

// CallbackTargets finds an app's callback target in the app registry: the
// app's CallbackURL, signed with its newest live production secret (its
// sandbox secret before it has one). It implements callback.Targets.
type CallbackTargets struct{ Service *Service }

var _ callback.Targets = CallbackTargets{}

// Target implements callback.Targets; CodeNotFound when the app has no
// callback URL or no live secret.
func (c CallbackTargets) Target(ctx context.Context, slug string) (callback.Target, error) {
	s := c.Service
	var (
		url, appKey string
		sealed      []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT a.callback_url, k.appkey, k.secret_enc
		FROM mp_apps a JOIN mp_app_secrets k ON k.app_id = a.id
		WHERE a.slug = $1 AND (k.expires_at IS NULL OR k.expires_at > $2)
		ORDER BY (k.env = 'production') DESC, k.id DESC LIMIT 1`, slug, s.now()).Scan(&url, &appKey, &sealed)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && url == "") {
		return callback.Target{}, jifu.Errorf(jifu.CodeNotFound, "marketplace: app %s has no callback URL", slug)
	}
	if err != nil {
		return callback.Target{}, s.dbErr(ctx, "callback target", err)
	}
	secret, err := s.open(appKey, sealed)
	if err != nil {
		return callback.Target{}, err
	}
	return callback.Target{URL: url, Secret: []byte(secret)}, nil
}
