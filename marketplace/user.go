package marketplace

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/notify"
)

// User is an end user of the store.
type User struct {
	ID             int64
	Phone          string
	RealName       string // set by real-name verification
	IDNumberMasked string // first 6 and last 4 characters
	VerifiedAt     *time.Time
	Level          int // 0 until verified; 101 on real-name verification; 102+ by risk rules or staff
	Channel        string
	Region         string
	Segments       []string
	CreatedAt      time.Time
}

// Ref returns the user's reference: the identity apps and the host see.
func (u *User) Ref() string { return UserRef(u.ID) }

// Profile returns what release segments match on.
func (u *User) Profile() Profile {
	return Profile{Level: u.Level, Channel: u.Channel, Region: u.Region}
}

// UserRef is the identity of store user id as apps and the host see it
// ("u" and the decimal id).
func UserRef(id int64) string { return "u" + strconv.FormatInt(id, 10) }

// ParseUserRef returns the id of a UserRef; false for anything else (dev
// identities, synthetic self-test users).
func ParseUserRef(ref string) (int64, bool) {
	if len(ref) < 2 || len(ref) > 20 || ref[0] != 'u' || ref[1] == '0' {
		return 0, false
	}
	for i := 1; i < len(ref); i++ {
		if ref[i] < '0' || ref[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(ref[1:], 10, 64)
	return id, err == nil && id > 0
}

// Login codes.
const (
	LoginCodeTTL      = 5 * time.Minute
	LoginCodeAttempts = 5 // wrong tries before the code is void
	LevelRealName     = 101
)

// RequestLoginCode sends a 6-digit one-time code by SMS to phone (the
// notify channel applies its rate limits: CodeLimit). The code replaces any
// earlier one and is stored hashed.
func (s *Service) RequestLoginCode(ctx context.Context, phone string) error {
	if !notify.ValidPhone(phone) {
		return invalid("%q is not a mobile number", phone)
	}
	if s.cfg.Notifier == nil {
		return jifu.Errorf(jifu.CodeUnavailable, "marketplace: no SMS channel configured")
	}
	n, err := randInt(1000000)
	if err != nil {
		return err
	}
	code := fmt.Sprintf("%06d", n)
	// Send first: when the channel refuses (rate limit), the code sent
	// before stays the valid one.
	if err := s.cfg.Notifier.Send(ctx, notify.Message{Channel: notify.SMS, To: phone, Purpose: notify.PurposeOTP,
		Body: fmt.Sprintf("【即付】您的登录验证码是 %s，%d 分钟内有效。Your Jifu login code is %s.", code, int(LoginCodeTTL.Minutes()), code)}); err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO mp_login_codes (phone, code_hash, attempts, expires_at) VALUES ($1, $2, 0, $3)
		ON CONFLICT (phone) DO UPDATE SET code_hash = EXCLUDED.code_hash, attempts = 0, expires_at = EXCLUDED.expires_at`,
		phone, codeHash(phone, code), s.now().Add(LoginCodeTTL))
	if err != nil {
		return s.dbErr(ctx, "login code", err)
	}
	return nil
}

func codeHash(phone, code string) []byte {
	sum := sha256.Sum256([]byte("jifu/login-code\x00" + phone + "\x00" + code))
	return sum[:]
}

func randInt(max int64) (int64, error) {
	b := new(big.Int).SetBytes(randomBytes(16))
	return b.Mod(b, big.NewInt(max)).Int64(), nil
}

// LoginWithCode checks a one-time code and opens a store session, creating
// the user on first login. A wrong, expired or used code is CodeDenied;
// after LoginCodeAttempts wrong tries the code is void.
func (s *Service) LoginWithCode(ctx context.Context, phone, code string) (token string, sess *Session, u *User, err error) {
	if !notify.ValidPhone(phone) || len(code) != 6 {
		return "", nil, nil, denied("wrong or expired code")
	}
	var (
		userID int64
		wrong  bool
	)
	err = s.tx(ctx, "login", func(tx pgx.Tx) error {
		var (
			stored   []byte
			attempts int
			expires  time.Time
		)
		err := tx.QueryRow(ctx, `SELECT code_hash, attempts, expires_at FROM mp_login_codes WHERE phone = $1 FOR UPDATE`, phone).
			Scan(&stored, &attempts, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return denied("wrong or expired code")
		}
		if err != nil {
			return err
		}
		if attempts >= LoginCodeAttempts || s.now().After(expires) {
			return denied("wrong or expired code")
		}
		if subtle.ConstantTimeCompare(stored, codeHash(phone, code)) != 1 {
			// Count the attempt and commit it: returning an error would roll
			// the count back.
			wrong = true
			_, err := tx.Exec(ctx, `UPDATE mp_login_codes SET attempts = attempts + 1 WHERE phone = $1`, phone)
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM mp_login_codes WHERE phone = $1`, phone); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO mp_users (phone) VALUES ($1) ON CONFLICT (phone) DO UPDATE SET phone = EXCLUDED.phone RETURNING id`, phone).Scan(&userID)
	})
	if err != nil {
		return "", nil, nil, err
	}
	if wrong {
		return "", nil, nil, denied("wrong or expired code")
	}
	token, sess, err = s.openSession(ctx, SessionUser, userID, s.cfg.UserSessionTTL, Actor{})
	if err != nil {
		return "", nil, nil, err
	}
	u, err = s.User(ctx, userID)
	return token, sess, u, err
}

const userSelect = `SELECT id, phone, real_name, id_number_masked, verified_at, level, channel, region, segments, created_at FROM mp_users`

func scanUser(r pgx.CollectableRow) (*User, error) {
	var u User
	err := r.Scan(&u.ID, &u.Phone, &u.RealName, &u.IDNumberMasked, &u.VerifiedAt, &u.Level, &u.Channel, &u.Region, &u.Segments, &u.CreatedAt)
	return &u, err
}

// User returns a store user.
func (s *Service) User(ctx context.Context, id int64) (*User, error) {
	rows, err := s.pool.Query(ctx, userSelect+` WHERE id = $1`, id)
	if err != nil {
		return nil, s.dbErr(ctx, "user", err)
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	if err != nil {
		return nil, s.dbErr(ctx, "user", err)
	}
	return u, nil
}

// Users lists store users, newest first (staff only), at most limit (≤ 500).
func (s *Service) Users(ctx context.Context, by Actor, limit int) ([]*User, error) {
	if !by.Is(RoleRisk, RoleAdmin, RoleSystem) {
		return nil, denied("only risk staff and admins list users")
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, userSelect+` ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, s.dbErr(ctx, "users", err)
	}
	us, err := pgx.CollectRows(rows, scanUser)
	if err != nil {
		return nil, s.dbErr(ctx, "users", err)
	}
	return us, nil
}

// UserProfile returns the segment attributes of a UserRef; the zero
// Profile for references that are not store users.
func (s *Service) UserProfile(ctx context.Context, ref string) (Profile, error) {
	id, ok := ParseUserRef(ref)
	if !ok {
		return Profile{}, nil
	}
	var p Profile
	err := s.pool.QueryRow(ctx, `SELECT level, channel, region FROM mp_users WHERE id = $1`, id).Scan(&p.Level, &p.Channel, &p.Region)
	if errors.Is(err, pgx.ErrNoRows) {
		return Profile{}, nil
	}
	if err != nil {
		return Profile{}, s.dbErr(ctx, "user profile", err)
	}
	return p, nil
}

// UserUpdate is what risk staff or admins change about a user; nil fields
// stay.
type UserUpdate struct {
	Level    *int
	Channel  *string
	Region   *string
	Segments []string // nil: unchanged
}

// UpdateUser changes a user's level, channel, region or segments. Risk
// staff and admins only (levels 201-203 are granted on request by risk
// staff); audited.
func (s *Service) UpdateUser(ctx context.Context, by Actor, id int64, up UserUpdate) error {
	if !by.Is(RoleRisk, RoleAdmin, RoleSystem) {
		return denied("only risk staff and admins change users")
	}
	if up.Level != nil && (*up.Level < 0 || *up.Level > 999) {
		return invalid("level %d is not a level code", *up.Level)
	}
	for _, p := range []*string{up.Channel, up.Region} {
		if p != nil && len(*p) > 64 {
			return invalid("channel and region are at most 64 bytes")
		}
	}
	err := s.tx(ctx, "update user", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE mp_users SET level = coalesce($2, level), channel = coalesce($3, channel),
			region = coalesce($4, region), segments = coalesce($5, segments) WHERE id = $1`, id, up.Level, up.Channel, up.Region, up.Segments)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return jifu.Errorf(jifu.CodeNotFound, "marketplace: user %d: not found", id)
		}
		return audit(ctx, tx, by, "user.update", UserRef(id), describeUpdate(up))
	})
	return err
}

func describeUpdate(up UserUpdate) string {
	var parts []string
	if up.Level != nil {
		parts = append(parts, fmt.Sprintf("level=%d", *up.Level))
	}
	if up.Channel != nil {
		parts = append(parts, "channel="+*up.Channel)
	}
	if up.Region != nil {
		parts = append(parts, "region="+*up.Region)
	}
	if up.Segments != nil {
		parts = append(parts, "segments="+strings.Join(up.Segments, ","))
	}
	return strings.Join(parts, " ")
}

// RealNameRequest is what the verification provider checks: that the name,
// the identity number and the mobile number belong together (三要素).
type RealNameRequest struct {
	Name     string
	IDNumber string
	Phone    string
}

// Real-name verification outcomes.
const (
	RealNameMatch    = "match"     // all three belong together
	RealNameMismatch = "mismatch"  // the name or the phone does not match the ID
	RealNameNotFound = "not_found" // the provider has no such ID
)

// RealNameVerifier is the outside provider of real-name verification. An
// error means the provider could not answer (retry later).
type RealNameVerifier interface {
	Verify(ctx context.Context, r RealNameRequest) (result string, err error)
}

// LocalVerifier is the faithful local peer of a real-name provider: it
// answers from its Registry (ID number → name and phone) when it has one,
// and otherwise matches every well-formed request, as a sandbox provider
// does.
type LocalVerifier struct {
	Registry map[string]RealNameRequest
}

// Verify implements RealNameVerifier.
func (l LocalVerifier) Verify(_ context.Context, r RealNameRequest) (string, error) {
	if l.Registry == nil {
		return RealNameMatch, nil
	}
	want, ok := l.Registry[r.IDNumber]
	switch {
	case !ok:
		return RealNameNotFound, nil
	case want.Name != r.Name || want.Phone != r.Phone:
		return RealNameMismatch, nil
	}
	return RealNameMatch, nil
}

// VerifyRealName verifies a user's name, ID number (GB 11643 checked here
// first: CodeInvalid) and phone (the user's own) through the provider, and
// on a match records the name and the masked number and raises the user
// to level 101. A mismatch is CodeDenied and changes nothing.
func (s *Service) VerifyRealName(ctx context.Context, userID int64, name, idNumber string) (*User, error) {
	u, err := s.User(ctx, userID)
	if err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n < 2 || n > 32 {
		return nil, invalid("the name must be 2..32 characters")
	}
	id, err := CheckIDNumber(strings.TrimSpace(idNumber), s.now())
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "marketplace: %s", err.Error())
	}
	res, err := s.cfg.Verifier.Verify(ctx, RealNameRequest{Name: name, IDNumber: id, Phone: u.Phone})
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "marketplace: the verification provider did not answer: %w", err)
	}
	if res != RealNameMatch {
		return nil, denied("real-name verification failed (%s)", res)
	}
	sum := sha256.Sum256([]byte("jifu/id-number\x00" + id))
	_, err = s.pool.Exec(ctx, `UPDATE mp_users SET real_name = $2, id_number_masked = $3, id_number_hash = $4, verified_at = $5,
		level = GREATEST(level, $6) WHERE id = $1`, userID, name, MaskIDNumber(id), sum[:], s.now(), LevelRealName)
	if err != nil {
		return nil, s.dbErr(ctx, "verify real name", err)
	}
	return s.User(ctx, userID)
}

// EnsureUser returns the user with phone, creating it (for seeding and
// tests; real users sign up by SMS code). System and admins only.
func (s *Service) EnsureUser(ctx context.Context, by Actor, phone string) (*User, error) {
	if !by.Is(RoleSystem, RoleAdmin) {
		return nil, denied("only admins create users")
	}
	if !notify.ValidPhone(phone) {
		return nil, invalid("%q is not a mobile number", phone)
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO mp_users (phone) VALUES ($1) ON CONFLICT (phone) DO UPDATE SET phone = EXCLUDED.phone RETURNING id`, phone).Scan(&id)
	if err != nil {
		return nil, s.dbErr(ctx, "ensure user", err)
	}
	return s.User(ctx, id)
}
