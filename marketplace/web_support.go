package marketplace

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
)

// What the web's store needs beyond the rest of the Service: one catalog
// listing, and whether a user has the app among its apps.

// Listing returns the store listing of one app released to everyone:
// CodeNotFound when there is no such app or no full release of it.
func (s *Service) Listing(ctx context.Context, slug string) (*Listing, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.id, a.developer_id, a.slug, a.name, a.icon, a.category, a.description, a.callback_url,
		a.qualification_url, a.ip_whitelist, a.created_at, v.version, coalesce(v.manifest->'scopes', '[]')
		FROM mp_apps a JOIN mp_releases r ON r.app_id = a.id AND r.stage = 'full' JOIN mp_versions v ON v.id = r.version_id
		WHERE a.slug = $1`, slug)
	if err != nil {
		return nil, s.dbErr(ctx, "listing", err)
	}
	l, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (*Listing, error) {
		var (
			l Listing
			a App
		)
		err := r.Scan(&a.ID, &a.DeveloperID, &a.Slug, &a.Name, &a.Icon, &a.Category, &a.Description, &a.CallbackURL,
			&a.QualificationURL, &a.IPWhitelist, &a.CreatedAt, &l.Version, &l.Scopes)
		l.App = &a
		return &l, err
	})
	if err != nil {
		if err == pgx.ErrNoRows {
			return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: app %q is not in the store", slug)
		}
		return nil, s.dbErr(ctx, "listing", err)
	}
	return l, nil
}

// Installed reports whether the user has the app (by slug) among its apps:
// it opened the app through the consent screen and has not revoked it
// since.
func (s *Service) Installed(ctx context.Context, userID int64, slug string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mp_installs i JOIN mp_apps a ON a.id = i.app_id
		WHERE i.user_id = $1 AND a.slug = $2)`, userID, slug).Scan(&ok)
	if err != nil {
		return false, s.dbErr(ctx, "installed", err)
	}
	return ok, nil
}
