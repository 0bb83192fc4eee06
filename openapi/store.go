package openapi

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/fosite"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the OAuth2 and QR-login tables (migration set "oauth").
var Migrations = database.MigrationSet{Name: "oauth", FS: database.MustSub(migrationFiles, "migrations")}

// Token kinds in oauth_tokens.
const (
	kindCode    = "code"
	kindAccess  = "access"
	kindRefresh = "refresh"
)

// store is fosite's storage over PostgreSQL. Clients are the marketplace's
// apps: client_id is an AppKey, the client secret its SECRET.
type store struct {
	pool   *pgxpool.Pool
	market Market
}

// OAuthScopes are the scopes an OAuth2 client may ask a user for.
var OAuthScopes = []string{"user.basic", "user.realname"}

// GetClient implements fosite.ClientManager.
func (s *store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	key, err := s.market.LookupKey(ctx, id)
	if jifu.ErrorCode(err) == jifu.CodeNotFound {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var uris []string
	err = s.pool.QueryRow(ctx, `SELECT redirect_uris FROM oauth_clients WHERE app_key = $1`, id).Scan(&uris)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, database.QueryError(ctx, "oauth: client", err)
	}
	var secrets []byte
	for i, sec := range key.Secrets {
		if i > 0 {
			secrets = append(secrets, '\n')
		}
		secrets = append(secrets, sec...)
	}
	return &fosite.DefaultClient{ID: id, Secret: secrets, RedirectURIs: uris,
		GrantTypes:    []string{"authorization_code", "implicit", "refresh_token"},
		ResponseTypes: []string{"code", "token"}, Scopes: OAuthScopes}, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager (JWT client
// assertions are not offered).
func (s *store) ClientAssertionJWTValid(context.Context, string) error { return nil }

// SetClientAssertionJWT implements fosite.ClientManager.
func (s *store) SetClientAssertionJWT(context.Context, string, time.Time) error { return nil }

func (s *store) create(ctx context.Context, kind, signature string, r fosite.Requester) error {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return jifu.Errorf(jifu.CodeInternal, "oauth: session: %w", err)
	}
	expires := r.GetSession().GetExpiresAt(map[string]fosite.TokenType{
		kindCode: fosite.AuthorizeCode, kindAccess: fosite.AccessToken, kindRefresh: fosite.RefreshToken}[kind])
	if expires.IsZero() {
		expires = time.Now().Add(365 * 24 * time.Hour)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO oauth_tokens (signature, kind, request_id, client_id, subject, requested_at,
		scopes, granted_scopes, form, session, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		signature, kind, r.GetID(), r.GetClient().GetID(), r.GetSession().GetSubject(), r.GetRequestedAt(),
		[]string(r.GetRequestedScopes()), []string(r.GetGrantedScopes()), r.GetRequestForm().Encode(), sess, expires)
	if err != nil {
		return database.QueryError(ctx, "oauth: store "+kind, err)
	}
	return nil
}

func (s *store) get(ctx context.Context, kind, signature string, session fosite.Session) (fosite.Requester, bool, error) {
	var (
		req            fosite.Request
		clientID, form string
		sess           []byte
		scopes, gs     []string
		active         bool
	)
	err := s.pool.QueryRow(ctx, `SELECT request_id, client_id, requested_at, scopes, granted_scopes, form, session, active
		FROM oauth_tokens WHERE kind = $1 AND signature = $2`, kind, signature).
		Scan(&req.ID, &clientID, &req.RequestedAt, &scopes, &gs, &form, &sess, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fosite.ErrNotFound
	}
	if err != nil {
		return nil, false, database.QueryError(ctx, "oauth: load "+kind, err)
	}
	client, err := s.GetClient(ctx, clientID)
	if err != nil {
		return nil, false, err
	}
	if session != nil {
		if err := json.Unmarshal(sess, session); err != nil {
			return nil, false, jifu.Errorf(jifu.CodeInternal, "oauth: session: %w", err)
		}
	}
	req.Client = client
	req.RequestedScope = scopes
	req.GrantedScope = gs
	req.Form, _ = url.ParseQuery(form)
	req.Session = session
	req.RequestedAudience, req.GrantedAudience = fosite.Arguments{}, fosite.Arguments{}
	return &req, active, nil
}

func (s *store) delete(ctx context.Context, kind, signature string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM oauth_tokens WHERE kind = $1 AND signature = $2`, kind, signature); err != nil {
		return database.QueryError(ctx, "oauth: delete "+kind, err)
	}
	return nil
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *store) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, kindCode, code, r)
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage: a used
// code answers its request with fosite.ErrInvalidatedAuthorizeCode (fosite
// then revokes the grant's tokens).
func (s *store) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	r, active, err := s.get(ctx, kindCode, code, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	return r, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
// It refuses a code already used, so two concurrent exchanges of one code
// cannot both succeed.
func (s *store) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE oauth_tokens SET active = false WHERE kind = 'code' AND signature = $1 AND active`, code)
	if err != nil {
		return database.QueryError(ctx, "oauth: invalidate code", err)
	}
	if tag.RowsAffected() == 0 {
		return fosite.ErrInvalidatedAuthorizeCode
	}
	return nil
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *store) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, kindAccess, sig, r)
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *store) GetAccessTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	r, active, err := s.get(ctx, kindAccess, sig, session)
	if err == nil && !active {
		return nil, fosite.ErrNotFound
	}
	return r, err
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *store) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return s.delete(ctx, kindAccess, sig)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *store) CreateRefreshTokenSession(ctx context.Context, sig, _ string, r fosite.Requester) error {
	return s.create(ctx, kindRefresh, sig, r)
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage: a rotated
// (used) refresh token is fosite.ErrInactiveToken.
func (s *store) GetRefreshTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	r, active, err := s.get(ctx, kindRefresh, sig, session)
	if err == nil && !active {
		return r, fosite.ErrInactiveToken
	}
	return r, err
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *store) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.delete(ctx, kindRefresh, sig)
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: the used
// refresh token and the grant's access tokens stop working.
func (s *store) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	_, err := s.pool.Exec(ctx, `UPDATE oauth_tokens SET active = false
		WHERE (kind = 'refresh' AND signature = $2) OR (kind = 'access' AND request_id = $1)`, requestID, sig)
	if err != nil {
		return database.QueryError(ctx, "oauth: rotate", err)
	}
	return nil
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage.
func (s *store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.revoke(ctx, kindRefresh, requestID)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage.
func (s *store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.revoke(ctx, kindAccess, requestID)
}

// RevokeRefreshTokenMaybeGracePeriod implements
// oauth2.TokenRevocationStorage (no grace period).
func (s *store) RevokeRefreshTokenMaybeGracePeriod(ctx context.Context, requestID, _ string) error {
	return s.revoke(ctx, kindRefresh, requestID)
}

func (s *store) revoke(ctx context.Context, kind, requestID string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE oauth_tokens SET active = false WHERE kind = $1 AND request_id = $2`, kind, requestID); err != nil {
		return database.QueryError(ctx, "oauth: revoke", err)
	}
	return nil
}

// PurgeExpired deletes expired tokens and codes, and QR logins.
func PurgeExpired(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `DELETE FROM oauth_tokens WHERE expires_at < now() - interval '1 day'`); err != nil {
		return database.QueryError(ctx, "oauth: purge", err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM oauth_qr_logins WHERE expires_at < now() - interval '1 hour'`); err != nil {
		return database.QueryError(ctx, "oauth: purge", err)
	}
	return nil
}
