package marketplace

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/manifest"
)

// Review is what a reviewer sees for a version: the version with its check
// report, its app, the previous approved version (nil for the first) and
// the difference in imports, scopes and limits against it.
type Review struct {
	Version  *Version
	App      *App
	Previous *Version
	Diff     Diff
}

// Diff is what a version changes against the previous approved one.
type Diff struct {
	ImportsAdded, ImportsRemoved []string
	ScopesAdded, ScopesRemoved   []string
	Limits                       []LimitChange
}

// LimitChange is one limit that differs.
type LimitChange struct {
	Name     string
	Old, New int64
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool {
	return len(d.ImportsAdded)+len(d.ImportsRemoved)+len(d.ScopesAdded)+len(d.ScopesRemoved)+len(d.Limits) == 0
}

// DiffVersions compares next against prev (nil prev: everything is added).
func DiffVersions(prev, next *Version) Diff {
	var d Diff
	var pi, ps []string
	var pl manifest.Limits
	if prev != nil {
		pi, ps, pl = prev.Imports, prev.Manifest.Scopes, prev.Manifest.Limits
	}
	d.ImportsAdded, d.ImportsRemoved = setDiff(pi, next.Imports)
	d.ScopesAdded, d.ScopesRemoved = setDiff(ps, next.Manifest.Scopes)
	nl := next.Manifest.Limits
	for _, c := range []LimitChange{
		{"memory_pages", int64(pl.MemoryPages), int64(nl.MemoryPages)},
		{"timeout_ms", int64(pl.TimeoutMS), int64(nl.TimeoutMS)},
		{"host_calls", int64(pl.HostCalls), int64(nl.HostCalls)},
		{"request_bytes", int64(pl.RequestBytes), int64(nl.RequestBytes)},
		{"response_bytes", int64(pl.ResponseBytes), int64(nl.ResponseBytes)},
	} {
		if c.Old != c.New {
			d.Limits = append(d.Limits, c)
		}
	}
	return d
}

func setDiff(old, new []string) (added, removed []string) {
	for _, n := range new {
		if !slices.Contains(old, n) {
			added = append(added, n)
		}
	}
	for _, o := range old {
		if !slices.Contains(new, o) {
			removed = append(removed, o)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

func (s *Service) reviewer(by Actor) error {
	if !by.Is(RoleReviewer, RoleAdmin, RoleSystem) {
		return denied("only reviewers review versions")
	}
	return nil
}

// ReviewQueue lists the versions awaiting review, oldest first. Reviewers
// and admins only.
func (s *Service) ReviewQueue(ctx context.Context, by Actor) ([]*Version, error) {
	if err := s.reviewer(by); err != nil {
		return nil, err
	}
	return s.versions(ctx, `v.status = 'in_review' ORDER BY v.created_at, v.id`)
}

// Review returns a version's review page. Reviewers and admins see any;
// a developer sees its own (to read the outcome and comments).
func (s *Service) Review(ctx context.Context, by Actor, versionID int64) (*Review, error) {
	v, err := s.Version(ctx, by, versionID)
	if err != nil {
		return nil, err
	}
	app, err := s.App(ctx, by, v.AppID)
	if err != nil {
		return nil, err
	}
	prev, err := s.previousApproved(ctx, v)
	if err != nil {
		return nil, err
	}
	return &Review{Version: v, App: app, Previous: prev, Diff: DiffVersions(prev, v)}, nil
}

func (s *Service) previousApproved(ctx context.Context, v *Version) (*Version, error) {
	vs, err := s.versions(ctx, `v.app_id = $1 AND v.status = 'approved' AND v.id < $2 ORDER BY v.id DESC LIMIT 1`, v.AppID, v.ID)
	if err != nil || len(vs) == 0 {
		return nil, err
	}
	return vs[0], nil
}

// Approve approves a version in review: it may then be released. The
// module is compiled into the host's cache at once so its first request is
// fast, and the app gets its production credential on its first approval
// (returned once; nil when it already had one). Audited.
func (s *Service) Approve(ctx context.Context, by Actor, versionID int64, comment string) (*Credential, error) {
	if err := s.reviewer(by); err != nil {
		return nil, err
	}
	v, err := s.Version(ctx, by, versionID)
	if err != nil {
		return nil, err
	}
	wasm, err := s.cfg.Artifacts.Get(ctx, v.SHA256)
	if err != nil {
		return nil, err
	}
	// Precompile (the host's validation compiles into its shared cache). A
	// module that no longer validates (the host changed) is not approved.
	if ps := s.host.Validate(ctx, wasm, v.Manifest); len(ps) > 0 {
		return nil, refused("the module no longer passes the host's validation", ps)
	}
	var cred *Credential
	err = s.tx(ctx, "approve", func(tx pgx.Tx) error {
		if err := s.decide(ctx, tx, by, v, StatusApproved, comment); err != nil {
			return err
		}
		var has bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mp_app_secrets WHERE app_id = $1 AND env = 'production')`, v.AppID).Scan(&has); err != nil {
			return err
		}
		if !has {
			cred, err = s.issueKey(ctx, tx, v.AppID, EnvProduction)
		}
		return err
	})
	return cred, err
}

// Reject refuses a version in review; the comment (required) tells the
// developer why. Audited.
func (s *Service) Reject(ctx context.Context, by Actor, versionID int64, comment string) error {
	if err := s.reviewer(by); err != nil {
		return err
	}
	if strings.TrimSpace(comment) == "" {
		return invalid("a rejection needs a comment for the developer")
	}
	v, err := s.Version(ctx, by, versionID)
	if err != nil {
		return err
	}
	return s.tx(ctx, "reject", func(tx pgx.Tx) error { return s.decide(ctx, tx, by, v, StatusRejected, comment) })
}

func (s *Service) decide(ctx context.Context, tx pgx.Tx, by Actor, v *Version, status, comment string) error {
	if len([]rune(comment)) > 4000 {
		return invalid("the comment is over 4000 characters")
	}
	tag, err := tx.Exec(ctx, `UPDATE mp_versions SET status = $2, review_comment = $3, reviewed_by = $4, reviewed_at = now()
		WHERE id = $1 AND status = 'in_review'`, v.ID, status, comment, nullID(by.AccountID))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return jifu.Errorf(jifu.CodeConflict, "marketplace: version %s of %s is not in review", v.Version, v.Slug)
	}
	action := "version.approve"
	if status == StatusRejected {
		action = "version.reject"
	}
	return audit(ctx, tx, by, action, "version:"+itoa(v.ID), v.Slug+" "+v.Version+": "+comment)
}
