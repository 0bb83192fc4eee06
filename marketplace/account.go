package marketplace

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

// Account is a staff login: a developer's person, a reviewer, risk staff or
// an admin.
type Account struct {
	ID          int64
	Email       string
	Name        string
	Role        Role
	DeveloperID int64 // RoleDeveloper only
	CreatedAt   time.Time
}

// Actor returns the account acting.
func (a *Account) Actor() Actor {
	return Actor{AccountID: a.ID, Role: a.Role, DeveloperID: a.DeveloperID, Name: a.Name}
}

// Session is a logged-in staff account (Kind "staff", Actor set) or store
// user (Kind "user", UserID set). CSRF is the token forms of this session
// must carry.
type Session struct {
	Kind      string
	Actor     Actor
	UserID    int64
	CSRF      string
	ExpiresAt time.Time
}

// Session kinds.
const (
	SessionStaff = "staff"
	SessionUser  = "user"
)

// Password rules.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 72 // bcrypt's limit
)

// bcryptCost is the KDF cost of stored passwords (bcrypt.DefaultCost).
const bcryptCost = bcrypt.DefaultCost

func checkPassword(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return invalid("a password must be %d..%d bytes", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

func checkEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 {
		return "", invalid("%q is not an email address", email)
	}
	return email, nil
}

func checkName(field, v string, max int) (string, error) {
	v = strings.TrimSpace(v)
	if n := utf8.RuneCountInString(v); n == 0 || n > max || !utf8.ValidString(v) {
		return "", invalid("%s must be 1..%d characters", field, max)
	}
	return v, nil
}

// CreateStaff creates a reviewer, risk or admin account. Only admins (and
// System, for seeding) may; the action is audited.
func (s *Service) CreateStaff(ctx context.Context, by Actor, email, name, password string, role Role) (*Account, error) {
	if !by.Is(RoleAdmin, RoleSystem) {
		return nil, denied("only admins create staff accounts")
	}
	if role != RoleReviewer && role != RoleRisk && role != RoleAdmin {
		return nil, invalid("staff role must be reviewer, risk or admin")
	}
	var acct *Account
	err := s.tx(ctx, "create staff", func(tx pgx.Tx) error {
		var err error
		acct, err = s.insertAccount(ctx, tx, email, name, password, role, 0)
		if err != nil {
			return err
		}
		return audit(ctx, tx, by, "staff.create", "account:"+acct.Email, string(role))
	})
	return acct, err
}

func (s *Service) insertAccount(ctx context.Context, tx pgx.Tx, email, name, password string, role Role, developerID int64) (*Account, error) {
	email, err := checkEmail(email)
	if err != nil {
		return nil, err
	}
	if name, err = checkName("name", name, 64); err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "marketplace: hash password: %w", err)
	}
	var dev *int64
	if developerID != 0 {
		dev = &developerID
	}
	a := &Account{Email: email, Name: name, Role: role, DeveloperID: developerID}
	err = tx.QueryRow(ctx, `INSERT INTO mp_accounts (email, name, role, password_hash, developer_id) VALUES ($1, $2, $3, $4, $5)
		RETURNING id, created_at`, email, name, string(role), string(hash), dev).Scan(&a.ID, &a.CreatedAt)
	if err != nil {
		if database.IsCode(err, "23505") {
			return nil, jifu.Errorf(jifu.CodeConflict, "marketplace: an account with email %s exists", email)
		}
		return nil, err
	}
	return a, nil
}

// Login checks an email and password and opens a staff session. It returns
// the session token (shown once: only its hash is stored) and the session.
// A wrong email or password is CodeDenied with one message for both.
func (s *Service) Login(ctx context.Context, email, password string) (token string, sess *Session, err error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var (
		a        Account
		hash     string
		dev      *int64
		disabled bool
		role     string
	)
	err = s.pool.QueryRow(ctx, `SELECT id, email, name, role, password_hash, developer_id, disabled FROM mp_accounts WHERE email = $1`, email).
		Scan(&a.ID, &a.Email, &a.Name, &role, &hash, &dev, &disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		// Spend the same time as a real check so timing does not reveal
		// which emails exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return "", nil, denied("wrong email or password")
	}
	if err != nil {
		return "", nil, s.dbErr(ctx, "login", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil || disabled {
		return "", nil, denied("wrong email or password")
	}
	a.Role = Role(role)
	if dev != nil {
		a.DeveloperID = *dev
	}
	return s.openSession(ctx, SessionStaff, a.ID, s.cfg.SessionTTL, a.Actor())
}

// dummyHash is a hash to compare against when the email is unknown, made on
// first use (not at start-up: bcrypt takes tens of milliseconds).
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not-a-password-of-anyone"), bcryptCost)
	return h
})

func (s *Service) openSession(ctx context.Context, kind string, subject int64, ttl time.Duration, actor Actor) (string, *Session, error) {
	raw := randomBytes(32)
	token := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	sess := &Session{Kind: kind, CSRF: base64.RawURLEncoding.EncodeToString(randomBytes(24)), ExpiresAt: s.now().Add(ttl).UTC()}
	if kind == SessionStaff {
		sess.Actor = actor
	} else {
		sess.UserID = subject
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO mp_sessions (token_hash, kind, subject_id, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		sum[:], kind, subject, sess.CSRF, sess.ExpiresAt)
	if err != nil {
		return "", nil, s.dbErr(ctx, "open session", err)
	}
	return token, sess, nil
}

// sessionCacheTTL bounds how long Authenticate trusts a session it read
// without asking the database again. Logout through this Service applies at
// once; a logout or a disabled account elsewhere within this time.
const sessionCacheTTL = 5 * time.Second

type cachedSession struct {
	sess Session
	at   time.Time
}

// Authenticate returns the live session of token: CodeDenied when the token
// is unknown, expired or its account disabled. Sessions are cached for a
// few seconds, so that serving an app to a logged-in user costs no
// database round trip per request.
func (s *Service) Authenticate(ctx context.Context, token string) (*Session, error) {
	if token == "" || len(token) > 128 {
		return nil, denied("not logged in")
	}
	sum := sha256.Sum256([]byte(token))
	now := s.now()
	if v, ok := s.sessions.Load(sum); ok {
		c := v.(*cachedSession)
		if now.Sub(c.at) < sessionCacheTTL && now.Before(c.sess.ExpiresAt) {
			sess := c.sess
			return &sess, nil
		}
		s.sessions.Delete(sum)
	}
	sess, err := s.authenticate(ctx, sum)
	if err != nil {
		return nil, err
	}
	if s.sessionN.Add(1) > 100000 { // bound the cache: start over
		s.sessions.Clear()
		s.sessionN.Store(0)
	}
	s.sessions.Store(sum, &cachedSession{sess: *sess, at: now})
	return sess, nil
}

func (s *Service) authenticate(ctx context.Context, sum [32]byte) (*Session, error) {
	var (
		sess    Session
		subject int64
	)
	err := s.pool.QueryRow(ctx, `SELECT kind, subject_id, csrf, expires_at FROM mp_sessions WHERE token_hash = $1 AND expires_at > $2`,
		sum[:], s.now()).Scan(&sess.Kind, &subject, &sess.CSRF, &sess.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, denied("not logged in, or the session expired")
	}
	if err != nil {
		return nil, s.dbErr(ctx, "authenticate", err)
	}
	if sess.Kind == SessionUser {
		sess.UserID = subject
		return &sess, nil
	}
	var (
		a        Account
		role     string
		dev      *int64
		disabled bool
	)
	err = s.pool.QueryRow(ctx, `SELECT id, name, role, developer_id, disabled FROM mp_accounts WHERE id = $1`, subject).
		Scan(&a.ID, &a.Name, &role, &dev, &disabled)
	if err != nil || disabled {
		return nil, denied("not logged in, or the account is disabled")
	}
	a.Role = Role(role)
	if dev != nil {
		a.DeveloperID = *dev
	}
	sess.Actor = a.Actor()
	return &sess, nil
}

// Logout ends the session of token. Ending an unknown session is no error.
func (s *Service) Logout(ctx context.Context, token string) error {
	sum := sha256.Sum256([]byte(token))
	s.sessions.Delete(sum)
	if _, err := s.pool.Exec(ctx, `DELETE FROM mp_sessions WHERE token_hash = $1`, sum[:]); err != nil {
		return s.dbErr(ctx, "logout", err)
	}
	return nil
}

// Account returns an account; a developer may read only its own.
func (s *Service) Account(ctx context.Context, by Actor, id int64) (*Account, error) {
	if by.AccountID != id && !by.Is(RoleAdmin, RoleSystem) {
		return nil, denied("not your account")
	}
	var (
		a    Account
		role string
		dev  *int64
	)
	err := s.pool.QueryRow(ctx, `SELECT id, email, name, role, developer_id, created_at FROM mp_accounts WHERE id = $1`, id).
		Scan(&a.ID, &a.Email, &a.Name, &role, &dev, &a.CreatedAt)
	if err != nil {
		return nil, s.dbErr(ctx, "account", err)
	}
	a.Role = Role(role)
	if dev != nil {
		a.DeveloperID = *dev
	}
	return &a, nil
}

// AccountByEmail returns the account with email. Admins and System only
// (seeding, support).
func (s *Service) AccountByEmail(ctx context.Context, by Actor, email string) (*Account, error) {
	if !by.Is(RoleAdmin, RoleSystem) {
		return nil, denied("only admins look accounts up")
	}
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM mp_accounts WHERE email = $1`, strings.ToLower(strings.TrimSpace(email))).Scan(&id)
	if err != nil {
		return nil, s.dbErr(ctx, "account "+email, err)
	}
	return s.Account(ctx, by, id)
}

// SetPassword replaces an account's password: its own, or any for admins
// and System. Existing sessions stay.
func (s *Service) SetPassword(ctx context.Context, by Actor, id int64, password string) error {
	if by.AccountID != id && !by.Is(RoleAdmin, RoleSystem) {
		return denied("not your account")
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return jifu.Errorf(jifu.CodeInternal, "marketplace: hash password: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE mp_accounts SET password_hash = $2 WHERE id = $1`, id, string(hash)); err != nil {
		return s.dbErr(ctx, "set password", err)
	}
	return nil
}

// PurgeExpired deletes expired sessions and login codes; serve runs it
// with the release evaluation.
func (s *Service) PurgeExpired(ctx context.Context) error {
	now := s.now()
	if _, err := s.pool.Exec(ctx, `DELETE FROM mp_sessions WHERE expires_at <= $1`, now); err != nil {
		return s.dbErr(ctx, "purge sessions", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM mp_login_codes WHERE expires_at <= $1`, now); err != nil {
		return s.dbErr(ctx, "purge login codes", err)
	}
	return nil
}
