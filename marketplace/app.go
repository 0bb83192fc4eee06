package marketplace

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

// App is an app in the marketplace.
type App struct {
	ID               int64
	DeveloperID      int64
	Slug             string
	Name             string
	Icon             string // an emoji or a short text shown as the app's icon
	Category         string
	Description      string
	CallbackURL      string   // where the platform sends signed notifications
	QualificationURL string   // the qualification-check interface (资格校验接口)
	IPWhitelist      []string // CIDRs the developer's servers call the open API from
	CreatedAt        time.Time
}

// AppInput is what a developer fills in for an app. On update the slug is
// ignored (it never changes).
type AppInput struct {
	Slug, Name, Icon, Category, Description string
	CallbackURL, QualificationURL           string
	IPWhitelist                             []string // CIDRs or single addresses
}

// Categories of the store, in display order.
var Categories = []string{"payments", "credit", "investing", "life", "tools", "other"}

// Environments of credentials.
const (
	EnvSandbox    = "sandbox"
	EnvProduction = "production"
)

// Credential is an APPKEY and SECRET pair. The secret is shown once, when
// it is created; afterwards only AppKeys metadata is available.
type Credential struct {
	Env    string
	AppKey string
	Secret string
}

// String never shows the secret.
func (c Credential) String() string {
	return "Credential{" + c.Env + " " + c.AppKey + " secret: <redacted>}"
}

// KeyMeta describes one secret of an app without revealing it.
type KeyMeta struct {
	ID        int64
	Env       string
	AppKey    string
	CreatedAt time.Time
	ExpiresAt *time.Time // nil: current; set: retiring (rotation overlap) or retired
}

// KeyInfo is what the open API needs to check a request signed with an
// APPKEY: the app, the secrets valid now (newest first; two during a
// rotation's overlap) and the server IP whitelist.
type KeyInfo struct {
	AppID       int64
	Slug        string
	Env         string
	AppKey      string
	Secrets     []string
	IPWhitelist []netip.Prefix
	CallbackURL string
}

// MaxRotationOverlap bounds how long a rotated secret keeps working.
const MaxRotationOverlap = 30 * 24 * time.Hour

var slugRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,38}[a-z0-9]$`)

func (in *AppInput) check(create bool) error {
	if create && !slugRE.MatchString(in.Slug) {
		return invalid("slug %q must be 3-40 characters of a-z, 0-9 and -, starting with a letter", in.Slug)
	}
	var err error
	if in.Name, err = checkName("name", in.Name, 64); err != nil {
		return err
	}
	if len([]rune(in.Icon)) > 8 {
		return invalid("icon must be at most 8 characters (an emoji)")
	}
	if in.Category == "" {
		in.Category = "other"
	}
	if !slices.Contains(Categories, in.Category) {
		return invalid("category %q is not one of %s", in.Category, strings.Join(Categories, ", "))
	}
	if len([]rune(in.Description)) > 2000 {
		return invalid("description is over 2000 characters")
	}
	for _, u := range []*string{&in.CallbackURL, &in.QualificationURL} {
		if *u == "" {
			continue
		}
		p, err := url.Parse(*u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || len(*u) > 512 {
			return invalid("%q is not an http(s) URL", *u)
		}
	}
	if len(in.IPWhitelist) > 64 {
		return invalid("at most 64 whitelist entries")
	}
	for i, e := range in.IPWhitelist {
		p, err := parseCIDR(e)
		if err != nil {
			return err
		}
		in.IPWhitelist[i] = p.String()
	}
	return nil
}

func parseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, invalid("%q is not an IP address or CIDR", s)
}

// CreateApp creates an app for the acting developer and its sandbox
// credential (the secret is in the returned Credential only: shown once).
// A taken slug is CodeConflict and nothing is created.
func (s *Service) CreateApp(ctx context.Context, by Actor, in AppInput) (*App, *Credential, error) {
	if by.Role != RoleDeveloper {
		return nil, nil, denied("only developers create apps")
	}
	if err := in.check(true); err != nil {
		return nil, nil, err
	}
	a := &App{DeveloperID: by.DeveloperID, Slug: in.Slug}
	var cred *Credential
	err := s.tx(ctx, "create app", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO mp_apps (developer_id, slug, name, icon, category, description, callback_url, qualification_url, ip_whitelist)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, created_at`,
			by.DeveloperID, in.Slug, in.Name, in.Icon, in.Category, in.Description, in.CallbackURL, in.QualificationURL, nonNil(in.IPWhitelist)).
			Scan(&a.ID, &a.CreatedAt)
		if err != nil {
			if isUnique(err) {
				return jifu.Errorf(jifu.CodeConflict, "marketplace: the slug %q is taken", in.Slug)
			}
			return err
		}
		cred, err = s.issueKey(ctx, tx, a.ID, EnvSandbox)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	a.fill(in)
	return a, cred, nil
}

func (a *App) fill(in AppInput) {
	a.Name, a.Icon, a.Category, a.Description = in.Name, in.Icon, in.Category, in.Description
	a.CallbackURL, a.QualificationURL, a.IPWhitelist = in.CallbackURL, in.QualificationURL, nonNil(in.IPWhitelist)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// UpdateApp changes an app's details (not its slug).
func (s *Service) UpdateApp(ctx context.Context, by Actor, id int64, in AppInput) (*App, error) {
	a, err := s.App(ctx, by, id)
	if err != nil {
		return nil, err
	}
	if by.Role != RoleDeveloper {
		return nil, denied("only the app's developer edits it")
	}
	if err := in.check(false); err != nil {
		return nil, err
	}
	_, err = s.pool.Exec(ctx, `UPDATE mp_apps SET name = $2, icon = $3, category = $4, description = $5, callback_url = $6,
		qualification_url = $7, ip_whitelist = $8 WHERE id = $1`,
		id, in.Name, in.Icon, in.Category, in.Description, in.CallbackURL, in.QualificationURL, nonNil(in.IPWhitelist))
	if err != nil {
		return nil, s.dbErr(ctx, "update app", err)
	}
	a.fill(in)
	return a, nil
}

const appSelect = `SELECT id, developer_id, slug, name, icon, category, description, callback_url, qualification_url, ip_whitelist, created_at FROM mp_apps`

func scanApp(r pgx.CollectableRow) (*App, error) {
	var a App
	err := r.Scan(&a.ID, &a.DeveloperID, &a.Slug, &a.Name, &a.Icon, &a.Category, &a.Description, &a.CallbackURL, &a.QualificationURL, &a.IPWhitelist, &a.CreatedAt)
	return &a, err
}

// App returns an app. A developer may read only its own (another's is
// CodeNotFound, so ids do not reveal what exists); staff read any.
func (s *Service) App(ctx context.Context, by Actor, id int64) (*App, error) {
	a, err := s.appWhere(ctx, `id = $1`, id)
	if err != nil {
		return nil, err
	}
	if !s.canSee(by, a) {
		return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: app %d: not found", id)
	}
	return a, nil
}

// AppBySlug returns an app by slug, with App's visibility rules.
func (s *Service) AppBySlug(ctx context.Context, by Actor, slug string) (*App, error) {
	a, err := s.appWhere(ctx, `slug = $1`, slug)
	if err != nil {
		return nil, err
	}
	if !s.canSee(by, a) {
		return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: app %q: not found", slug)
	}
	return a, nil
}

func (s *Service) canSee(by Actor, a *App) bool {
	if by.Role == RoleDeveloper {
		return by.DeveloperID == a.DeveloperID
	}
	return by.Is(RoleReviewer, RoleRisk, RoleAdmin, RoleSystem)
}

func (s *Service) appWhere(ctx context.Context, where string, arg any) (*App, error) {
	rows, err := s.pool.Query(ctx, appSelect+` WHERE `+where, arg)
	if err != nil {
		return nil, s.dbErr(ctx, "app", err)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanApp)
	if err != nil {
		return nil, s.dbErr(ctx, "app", err)
	}
	return a, nil
}

// Apps lists the apps the actor may see: a developer's own, or all for staff.
func (s *Service) Apps(ctx context.Context, by Actor) ([]*App, error) {
	var dev int64
	switch {
	case by.Role == RoleDeveloper:
		dev = by.DeveloperID
	case !by.Is(RoleReviewer, RoleRisk, RoleAdmin, RoleSystem):
		return nil, denied("not allowed to list apps")
	}
	rows, err := s.pool.Query(ctx, appSelect+` WHERE ($1 = 0 OR developer_id = $1) ORDER BY slug`, dev)
	if err != nil {
		return nil, s.dbErr(ctx, "apps", err)
	}
	as, err := pgx.CollectRows(rows, scanApp)
	if err != nil {
		return nil, s.dbErr(ctx, "apps", err)
	}
	return as, nil
}

// ownApp loads an app the actor (its developer) may change.
func (s *Service) ownApp(ctx context.Context, by Actor, id int64) (*App, error) {
	a, err := s.App(ctx, by, id)
	if err != nil {
		return nil, err
	}
	if by.Role != RoleDeveloper && by.Role != RoleSystem {
		return nil, denied("only the app's developer may do this")
	}
	return a, nil
}

// issueKey creates an environment's APPKEY and first secret for an app.
func (s *Service) issueKey(ctx context.Context, tx pgx.Tx, appID int64, env string) (*Credential, error) {
	prefix := "sbx"
	if env == EnvProduction {
		prefix = "jfk"
	}
	c := &Credential{Env: env, AppKey: prefix + hex.EncodeToString(randomBytes(10)), Secret: newSecret()}
	_, err := tx.Exec(ctx, `INSERT INTO mp_app_secrets (app_id, env, appkey, secret_enc) VALUES ($1, $2, $3, $4)`,
		appID, env, c.AppKey, s.seal(c.AppKey, c.Secret))
	return c, err
}

func newSecret() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

// seal encrypts a secret: 0x01 || nonce || ciphertext, bound to its APPKEY.
func (s *Service) seal(appKey, secret string) []byte {
	out := make([]byte, 1+12, 1+12+len(secret)+s.aead.Overhead())
	out[0] = 1
	copy(out[1:], randomBytes(12))
	return s.aead.Seal(out, out[1:13], []byte(secret), []byte("jifu/marketplace/secret/v1\x00"+appKey))
}

func (s *Service) open(appKey string, sealed []byte) (string, error) {
	if len(sealed) < 13+s.aead.Overhead() || sealed[0] != 1 {
		return "", jifu.Errorf(jifu.CodeInternal, "marketplace: secret of %s is not in a known format", appKey)
	}
	p, err := s.aead.Open(nil, sealed[1:13], sealed[13:], []byte("jifu/marketplace/secret/v1\x00"+appKey))
	if err != nil {
		return "", jifu.Errorf(jifu.CodeInternal, "marketplace: cannot decrypt the secret of %s: wrong master key or altered", appKey)
	}
	return string(p), nil
}

// AppKeys lists an app's credentials without secrets, newest first.
func (s *Service) AppKeys(ctx context.Context, by Actor, appID int64) ([]KeyMeta, error) {
	if _, err := s.App(ctx, by, appID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id, env, appkey, created_at, expires_at FROM mp_app_secrets WHERE app_id = $1 ORDER BY id DESC`, appID)
	if err != nil {
		return nil, s.dbErr(ctx, "app keys", err)
	}
	ks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyMeta, error) {
		var k KeyMeta
		err := r.Scan(&k.ID, &k.Env, &k.AppKey, &k.CreatedAt, &k.ExpiresAt)
		return k, err
	})
	if err != nil {
		return nil, s.dbErr(ctx, "app keys", err)
	}
	return ks, nil
}

// RotateSecret issues a new secret for an app's environment (same APPKEY),
// returned once. The secrets in use keep working for overlap (0: stop at
// once; at most MaxRotationOverlap), so the developer can roll its servers.
func (s *Service) RotateSecret(ctx context.Context, by Actor, appID int64, env string, overlap time.Duration) (*Credential, error) {
	if _, err := s.ownApp(ctx, by, appID); err != nil {
		return nil, err
	}
	if env != EnvSandbox && env != EnvProduction {
		return nil, invalid("environment %q is not sandbox or production", env)
	}
	if overlap < 0 || overlap > MaxRotationOverlap {
		return nil, invalid("overlap must be 0..%v", MaxRotationOverlap)
	}
	var c *Credential
	err := s.tx(ctx, "rotate secret", func(tx pgx.Tx) error {
		var appKey string
		err := tx.QueryRow(ctx, `SELECT appkey FROM mp_app_secrets WHERE app_id = $1 AND env = $2 ORDER BY id DESC LIMIT 1 FOR UPDATE`, appID, env).Scan(&appKey)
		if err != nil {
			if err == pgx.ErrNoRows {
				return jifu.Errorf(jifu.CodeNotFound, "marketplace: the app has no %s credential yet", env)
			}
			return err
		}
		until := s.now().Add(overlap)
		if _, err := tx.Exec(ctx, `UPDATE mp_app_secrets SET expires_at = $3 WHERE app_id = $1 AND env = $2 AND (expires_at IS NULL OR expires_at > $3)`,
			appID, env, until); err != nil {
			return err
		}
		c = &Credential{Env: env, AppKey: appKey, Secret: newSecret()}
		if _, err := tx.Exec(ctx, `INSERT INTO mp_app_secrets (app_id, env, appkey, secret_enc) VALUES ($1, $2, $3, $4)`,
			appID, env, appKey, s.seal(appKey, c.Secret)); err != nil {
			return err
		}
		return audit(ctx, tx, by, "app.rotate_secret", "app:"+itoa(appID), env+" overlap "+overlap.String())
	})
	return c, err
}

// LookupKey returns what the open API needs to verify a request made with
// appKey: CodeNotFound for an unknown key or one with no live secret.
func (s *Service) LookupKey(ctx context.Context, appKey string) (*KeyInfo, error) {
	if appKey == "" || len(appKey) > 64 {
		return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: unknown APPKEY")
	}
	rows, err := s.pool.Query(ctx, `SELECT k.app_id, a.slug, k.env, k.secret_enc, a.ip_whitelist, a.callback_url
		FROM mp_app_secrets k JOIN mp_apps a ON a.id = k.app_id
		WHERE k.appkey = $1 AND (k.expires_at IS NULL OR k.expires_at > $2) ORDER BY k.id DESC`, appKey, s.now())
	if err != nil {
		return nil, s.dbErr(ctx, "lookup key", err)
	}
	defer rows.Close()
	var info *KeyInfo
	for rows.Next() {
		var (
			ki     KeyInfo
			sealed []byte
			wl     []string
		)
		if err := rows.Scan(&ki.AppID, &ki.Slug, &ki.Env, &sealed, &wl, &ki.CallbackURL); err != nil {
			return nil, s.dbErr(ctx, "lookup key", err)
		}
		secret, err := s.open(appKey, sealed)
		if err != nil {
			return nil, err
		}
		if info == nil {
			ki.AppKey = appKey
			for _, w := range wl {
				if p, err := netip.ParsePrefix(w); err == nil {
					ki.IPWhitelist = append(ki.IPWhitelist, p)
				}
			}
			info = &ki
		}
		info.Secrets = append(info.Secrets, secret)
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr(ctx, "lookup key", err)
	}
	if info == nil {
		return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: unknown APPKEY")
	}
	return info, nil
}

// Allowed reports whether addr is in the key's IP whitelist. An empty
// whitelist allows nobody.
func (k *KeyInfo) Allowed(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range k.IPWhitelist {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func isUnique(err error) bool { return database.IsCode(err, "23505") }
