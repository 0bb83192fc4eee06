package marketplace

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/database"
)

// Consents answers the host's consent checks from the users' grants in
// PostgreSQL (host.ConsentChecker). It also knows the synthetic users the
// automated checks run self-tests as, each holding consent for exactly the
// scopes of the version under test, for as long as the run lasts.
type Consents struct {
	pool  *pgxpool.Pool
	mu    sync.RWMutex
	users map[string]syntheticUser
}

type syntheticUser struct {
	app    string
	scopes []string
}

// NewConsents returns the consent checker over pool's database.
func NewConsents(pool *pgxpool.Pool) *Consents {
	return &Consents{pool: pool, users: map[string]syntheticUser{}}
}

var _ host.ConsentChecker = (*Consents)(nil)

// SelfTestPrefix starts the references of synthetic self-test users; no
// store user's reference (UserRef) can start with it.
const SelfTestPrefix = "selftest-"

// Consented implements host.ConsentChecker: whether user (a UserRef) has
// granted app (a slug) scope.
func (c *Consents) Consented(ctx context.Context, app, user, scope string) (bool, error) {
	if strings.HasPrefix(user, SelfTestPrefix) {
		c.mu.RLock()
		su, ok := c.users[user]
		c.mu.RUnlock()
		return ok && su.app == app && slices.Contains(su.scopes, scope), nil
	}
	id, ok := ParseUserRef(user)
	if !ok {
		return false, nil
	}
	var granted bool
	err := c.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mp_consents c JOIN mp_apps a ON a.id = c.app_id
		WHERE c.user_id = $1 AND a.slug = $2 AND c.scope = $3)`, id, app, scope).Scan(&granted)
	if err != nil {
		return false, database.QueryError(ctx, "marketplace: consent", err)
	}
	return granted, nil
}

// synthetic registers a self-test user holding scopes of app until release
// is called.
func (c *Consents) synthetic(app string, scopes []string) (user string, release func()) {
	user = SelfTestPrefix + hex.EncodeToString(randomBytes(8))
	c.mu.Lock()
	c.users[user] = syntheticUser{app: app, scopes: slices.Clone(scopes)}
	c.mu.Unlock()
	return user, func() {
		c.mu.Lock()
		delete(c.users, user)
		c.mu.Unlock()
	}
}

// ScopeInfo is one scope an app asks for, as the consent screen shows it.
type ScopeInfo struct {
	Name         string
	Description  string
	NeedsConsent bool // false: granted by review alone (the app's own storage)
	Granted      bool // the user granted it (always true when !NeedsConsent)
}

// ConsentScreen is what the store shows a user opening an app.
type ConsentScreen struct {
	App       *App
	Version   string // the version the user would get
	Scopes    []ScopeInfo
	Installed bool
}

// Pending reports whether some scope still needs the user's grant.
func (c *ConsentScreen) Pending() bool {
	for _, s := range c.Scopes {
		if !s.Granted {
			return true
		}
	}
	return false
}

// InstalledApp is one app of a user's "my apps".
type InstalledApp struct {
	App         *App
	InstalledAt time.Time
	Granted     []string
}

// ConsentScreen returns the scopes the app asks of the user (those of the
// version the user would be served) and which ones the user granted.
// CodeNotFound when the app is not released to the user.
func (s *Service) ConsentScreen(ctx context.Context, userID int64, slug string) (*ConsentScreen, error) {
	app, v, err := s.servedVersion(ctx, userID, slug)
	if err != nil {
		return nil, err
	}
	granted, err := s.granted(ctx, userID, app.ID)
	if err != nil {
		return nil, err
	}
	cs := &ConsentScreen{App: app, Version: v.Version}
	err = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mp_installs WHERE user_id = $1 AND app_id = $2)`, userID, app.ID).Scan(&cs.Installed)
	if err != nil {
		return nil, s.dbErr(ctx, "consent screen", err)
	}
	for _, name := range v.Manifest.Scopes {
		info := ScopeInfo{Name: name}
		if sc, ok := s.host.Registry().Scope(name); ok {
			info.Description, info.NeedsConsent = sc.Description, sc.NeedsConsent
		}
		info.Granted = !info.NeedsConsent || slices.Contains(granted, name)
		cs.Scopes = append(cs.Scopes, info)
	}
	return cs, nil
}

// servedVersion returns the app and the version that serves user.
func (s *Service) servedVersion(ctx context.Context, userID int64, slug string) (*App, *Version, error) {
	app, err := s.appWhere(ctx, `slug = $1`, slug)
	if err != nil {
		return nil, nil, err
	}
	full, gray, err := s.activeReleases(ctx, app.ID)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.UserProfile(ctx, UserRef(userID))
	if err != nil {
		return nil, nil, err
	}
	r := Choose(full, gray, UserRef(userID), p)
	if r == nil {
		return nil, nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: app %q is not available", slug)
	}
	vs, err := s.versions(ctx, `v.id = $1`, r.VersionID)
	if err != nil || len(vs) == 0 {
		return nil, nil, s.dbErr(ctx, "served version", err)
	}
	return app, vs[0], nil
}

func (s *Service) granted(ctx context.Context, userID, appID int64) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT scope FROM mp_consents WHERE user_id = $1 AND app_id = $2 ORDER BY scope`, userID, appID)
	if err != nil {
		return nil, s.dbErr(ctx, "consents", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.dbErr(ctx, "consents", err)
	}
	return out, nil
}

// Install adds the app to the user's apps and grants scopes (which must be
// among those the served version asks for; CodeInvalid otherwise, nothing
// changed). Installing again adds grants.
func (s *Service) Install(ctx context.Context, userID int64, slug string, scopes []string) error {
	app, v, err := s.servedVersion(ctx, userID, slug)
	if err != nil {
		return err
	}
	for _, sc := range scopes {
		if !v.Manifest.HasScope(sc) {
			return invalid("%s does not ask for scope %q", slug, sc)
		}
	}
	return s.tx(ctx, "install", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO mp_installs (user_id, app_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, userID, app.ID); err != nil {
			return err
		}
		for _, sc := range scopes {
			if _, err := tx.Exec(ctx, `INSERT INTO mp_consents (user_id, app_id, scope) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, userID, app.ID, sc); err != nil {
				return err
			}
		}
		return nil
	})
}

// Revoke withdraws the user's grants of scopes (all of them when scopes is
// nil) from the app; the next scoped call is refused. With uninstall the
// app leaves the user's apps too.
func (s *Service) Revoke(ctx context.Context, userID int64, slug string, scopes []string, uninstall bool) error {
	app, err := s.appWhere(ctx, `slug = $1`, slug)
	if err != nil {
		return err
	}
	return s.tx(ctx, "revoke", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM mp_consents WHERE user_id = $1 AND app_id = $2 AND ($3::text[] IS NULL OR scope = ANY($3))`,
			userID, app.ID, scopes); err != nil {
			return err
		}
		if uninstall {
			_, err := tx.Exec(ctx, `DELETE FROM mp_installs WHERE user_id = $1 AND app_id = $2`, userID, app.ID)
			return err
		}
		return nil
	})
}

// MyApps lists the user's installed apps with the scopes granted.
func (s *Service) MyApps(ctx context.Context, userID int64) ([]InstalledApp, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.id, a.developer_id, a.slug, a.name, a.icon, a.category, a.description, a.callback_url,
		a.qualification_url, a.ip_whitelist, a.created_at, i.installed_at,
		coalesce((SELECT array_agg(c.scope ORDER BY c.scope) FROM mp_consents c WHERE c.user_id = i.user_id AND c.app_id = a.id), '{}')
		FROM mp_installs i JOIN mp_apps a ON a.id = i.app_id WHERE i.user_id = $1 ORDER BY i.installed_at DESC`, userID)
	if err != nil {
		return nil, s.dbErr(ctx, "my apps", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (InstalledApp, error) {
		var (
			ia InstalledApp
			a  App
		)
		err := r.Scan(&a.ID, &a.DeveloperID, &a.Slug, &a.Name, &a.Icon, &a.Category, &a.Description, &a.CallbackURL,
			&a.QualificationURL, &a.IPWhitelist, &a.CreatedAt, &ia.InstalledAt, &ia.Granted)
		ia.App = &a
		return ia, err
	})
	if err != nil {
		return nil, s.dbErr(ctx, "my apps", err)
	}
	return out, nil
}

// Listing is one app of the store's catalog.
type Listing struct {
	App     *App
	Version string // the stable version
	Scopes  []string
}

// Catalog lists the apps released to everyone (a full release), by
// category ("" for all), ordered by name.
func (s *Service) Catalog(ctx context.Context, category string) ([]Listing, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.id, a.developer_id, a.slug, a.name, a.icon, a.category, a.description, a.callback_url,
		a.qualification_url, a.ip_whitelist, a.created_at, v.version, v.manifest->'scopes'
		FROM mp_apps a JOIN mp_releases r ON r.app_id = a.id AND r.stage = 'full' JOIN mp_versions v ON v.id = r.version_id
		WHERE ($1 = '' OR a.category = $1) ORDER BY a.name, a.slug`, category)
	if err != nil {
		return nil, s.dbErr(ctx, "catalog", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Listing, error) {
		var (
			l Listing
			a App
		)
		err := r.Scan(&a.ID, &a.DeveloperID, &a.Slug, &a.Name, &a.Icon, &a.Category, &a.Description, &a.CallbackURL,
			&a.QualificationURL, &a.IPWhitelist, &a.CreatedAt, &l.Version, &l.Scopes)
		l.App = &a
		return l, err
	})
	if err != nil {
		return nil, s.dbErr(ctx, "catalog", err)
	}
	return out, nil
}
