package marketplace

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
)

// Release stages.
const (
	StageGray       = "gray"        // serving a target segment and a percentage of it
	StageFull       = "full"        // the stable version everyone else gets
	StageRolledBack = "rolled_back" // withdrawn; users went back to the previous version
	StageSuperseded = "superseded"  // replaced by a later full release
)

// Segment is the target user group of a gray release (圈定用户群). Empty
// fields match everyone; a user on the Whitelist always gets the gray
// version, whatever the other fields and the percentage say. A segment that
// holds only a whitelist targets just those users.
type Segment struct {
	Levels    []int    `json:"levels,omitempty"`    // user levels, e.g. 101, 201
	Channels  []string `json:"channels,omitempty"`  // acquisition channels
	Regions   []string `json:"regions,omitempty"`   // region codes
	Whitelist []string `json:"whitelist,omitempty"` // user references (UserRef)
}

// Empty reports whether the segment targets everyone.
func (g Segment) Empty() bool {
	return len(g.Levels)+len(g.Channels)+len(g.Regions)+len(g.Whitelist) == 0
}

// Profile is what segments match on: a store user's attributes.
type Profile struct {
	Level   int
	Channel string
	Region  string
}

// Matches reports whether a user with profile p is in the segment, the
// whitelist aside.
func (g Segment) Matches(p Profile) bool {
	return (len(g.Levels) == 0 || slices.Contains(g.Levels, p.Level)) &&
		(len(g.Channels) == 0 || slices.Contains(g.Channels, p.Channel)) &&
		(len(g.Regions) == 0 || slices.Contains(g.Regions, p.Region))
}

func (g *Segment) check() error {
	if len(g.Levels)+len(g.Channels)+len(g.Regions) > 200 || len(g.Whitelist) > 10000 {
		return invalid("the segment is too large")
	}
	for _, l := range g.Levels {
		if l < 100 || l > 999 {
			return invalid("user level %d is not a level code (101, 102, 201, ...)", l)
		}
	}
	for _, list := range [][]string{g.Channels, g.Regions, g.Whitelist} {
		for _, v := range list {
			if v == "" || len(v) > 64 {
				return invalid("segment entries must be 1..64 bytes")
			}
		}
	}
	return nil
}

// ReleasePlan says whom a release targets.
type ReleasePlan struct {
	Percent float64 // 0..100 of the segment; 100 with an empty segment releases to everyone at once
	Segment Segment
}

// Release is one rollout of a version.
type Release struct {
	ID         int64
	AppID      int64
	VersionID  int64
	Version    string
	PreviousID int64 // the stable version when the release started (0: none)
	Stage      string
	Percent    float64
	Segment    Segment
	Salt       string // the sticky-hash salt: a user's bucket is stable for the release's life
	Reason     string // why it was rolled back
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

func toBP(p float64) (int, error) {
	if math.IsNaN(p) || p < 0 || p > 100 {
		return 0, invalid("the gray percentage must be 0..100, not %v", p)
	}
	return int(math.Round(p * 100)), nil
}

// Bucket returns a user's sticky bucket 0..9999 for a release salt: the
// user gets the gray version when its bucket is below the percentage in
// basis points. Raising the percentage keeps everyone already in.
func Bucket(salt, user string) int {
	// FNV-1a 64 over salt, a NUL and user (hash/fnv's algorithm, inlined
	// to keep the request path free of allocations).
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(salt); i++ {
		h = (h ^ uint64(salt[i])) * prime
	}
	h *= prime // the NUL separator: h ^ 0 == h
	for i := 0; i < len(user); i++ {
		h = (h ^ uint64(user[i])) * prime
	}
	return int(h % 10000)
}

// StartRelease rolls an approved version out: to everyone at once when the
// plan is 100% of an empty segment (or when the app has no stable version
// and the plan says so), otherwise as a gray release beside the stable
// version. An app has at most one gray release: promote or roll it back
// first (CodeConflict). The app's developer only; audited.
func (s *Service) StartRelease(ctx context.Context, by Actor, versionID int64, plan ReleasePlan) (*Release, error) {
	v, err := s.Version(ctx, by, versionID)
	if err != nil {
		return nil, err
	}
	if _, err := s.ownApp(ctx, by, v.AppID); err != nil {
		return nil, err
	}
	if v.Status != StatusApproved {
		return nil, jifu.Errorf(jifu.CodeConflict, "marketplace: version %s is %s; only approved versions are released", v.Version, v.Status)
	}
	bp, err := toBP(plan.Percent)
	if err != nil {
		return nil, err
	}
	if err := plan.Segment.check(); err != nil {
		return nil, err
	}
	var rel *Release
	err = s.tx(ctx, "release", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT id FROM mp_apps WHERE id = $1 FOR UPDATE`, v.AppID); err != nil {
			return err
		}
		var gray int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM mp_releases WHERE app_id = $1 AND stage = 'gray'`, v.AppID).Scan(&gray); err != nil {
			return err
		}
		if gray > 0 {
			return jifu.Errorf(jifu.CodeConflict, "marketplace: %s already has a gray release; promote or roll it back first", v.Slug)
		}
		var stable *int64
		err := tx.QueryRow(ctx, `SELECT version_id FROM mp_releases WHERE app_id = $1 AND stage = 'full'`, v.AppID).Scan(&stable)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		if stable != nil && *stable == v.ID {
			return jifu.Errorf(jifu.CodeConflict, "marketplace: version %s is already released to everyone", v.Version)
		}
		stage := StageGray
		if bp == 10000 && plan.Segment.Empty() {
			stage = StageFull
			if _, err := tx.Exec(ctx, `UPDATE mp_releases SET stage = 'superseded', updated_at = now() WHERE app_id = $1 AND stage = 'full'`, v.AppID); err != nil {
				return err
			}
		}
		rel, err = insertRelease(ctx, tx, by, v, stable, stage, bp, plan.Segment)
		if err != nil {
			return err
		}
		return audit(ctx, tx, by, "release.start", "app:"+itoa(v.AppID), fmt.Sprintf("%s %s %s %.2f%%", v.Slug, v.Version, stage, rel.Percent))
	})
	if err != nil {
		return nil, err
	}
	s.changed(v.Slug)
	return rel, nil
}

func insertRelease(ctx context.Context, tx pgx.Tx, by Actor, v *Version, prev *int64, stage string, bp int, seg Segment) (*Release, error) {
	r := &Release{AppID: v.AppID, VersionID: v.ID, Version: v.Version, Stage: stage, Percent: float64(bp) / 100, Segment: seg,
		Salt: hex.EncodeToString(randomBytes(8))}
	if prev != nil {
		r.PreviousID = *prev
	}
	err := tx.QueryRow(ctx, `INSERT INTO mp_releases (app_id, version_id, previous_id, stage, percent_bp, salt, levels, channels, regions, whitelist, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id, created_at, updated_at`,
		v.AppID, v.ID, prev, stage, bp, r.Salt, nonNilInts(seg.Levels), nonNil(seg.Channels), nonNil(seg.Regions), nonNil(seg.Whitelist), nullID(by.AccountID)).
		Scan(&r.ID, &r.CreatedAt, &r.UpdatedAt)
	return r, err
}

func nonNilInts(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

// SetGrayPercent raises or lowers the app's gray release's percentage
// (0..100). Users already in stay in when it rises (sticky buckets).
func (s *Service) SetGrayPercent(ctx context.Context, by Actor, appID int64, percent float64) error {
	bp, err := toBP(percent)
	if err != nil {
		return err
	}
	return s.updateGray(ctx, by, appID, "release.percent", fmt.Sprintf("%.2f%%", percent),
		`UPDATE mp_releases SET percent_bp = $2, updated_at = now() WHERE app_id = $1 AND stage = 'gray'`, bp)
}

// SetSegment changes the target segment of the app's gray release.
func (s *Service) SetSegment(ctx context.Context, by Actor, appID int64, seg Segment) error {
	if err := seg.check(); err != nil {
		return err
	}
	return s.updateGray(ctx, by, appID, "release.segment", fmt.Sprintf("%+v", seg),
		`UPDATE mp_releases SET levels = $2, channels = $3, regions = $4, whitelist = $5, updated_at = now() WHERE app_id = $1 AND stage = 'gray'`,
		nonNilInts(seg.Levels), nonNil(seg.Channels), nonNil(seg.Regions), nonNil(seg.Whitelist))
}

func (s *Service) updateGray(ctx context.Context, by Actor, appID int64, action, detail, q string, args ...any) error {
	app, err := s.ownApp(ctx, by, appID)
	if err != nil {
		return err
	}
	err = s.tx(ctx, action, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, q, append([]any{appID}, args...)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return jifu.Errorf(jifu.CodeConflict, "marketplace: %s has no gray release", app.Slug)
		}
		return audit(ctx, tx, by, action, "app:"+itoa(appID), detail)
	})
	if err == nil {
		s.changed(app.Slug)
	}
	return err
}

// Promote makes the app's gray release the stable version for everyone.
func (s *Service) Promote(ctx context.Context, by Actor, appID int64) error {
	app, err := s.ownApp(ctx, by, appID)
	if err != nil {
		return err
	}
	err = s.tx(ctx, "promote", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT id FROM mp_apps WHERE id = $1 FOR UPDATE`, appID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mp_releases SET stage = 'superseded', updated_at = now() WHERE app_id = $1 AND stage = 'full'`, appID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE mp_releases SET stage = 'full', percent_bp = 10000, updated_at = now() WHERE app_id = $1 AND stage = 'gray'`, appID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return jifu.Errorf(jifu.CodeConflict, "marketplace: %s has no gray release to promote", app.Slug)
		}
		return audit(ctx, tx, by, "release.promote", "app:"+itoa(appID), app.Slug)
	})
	if err == nil {
		s.changed(app.Slug)
	}
	return err
}

// Rollback withdraws the app's newest release: during a gray release
// everyone goes back to the stable version; otherwise the stable version
// goes back to the one it replaced. CodeConflict when there is nothing to
// go back to. The developer, an admin or System (automatic rollback) may;
// audited.
func (s *Service) Rollback(ctx context.Context, by Actor, appID int64, reason string) error {
	var app *App
	var err error
	if by.Is(RoleAdmin, RoleSystem) {
		app, err = s.App(ctx, System, appID)
	} else {
		app, err = s.ownApp(ctx, by, appID)
	}
	if err != nil {
		return err
	}
	err = s.tx(ctx, "rollback", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT id FROM mp_apps WHERE id = $1 FOR UPDATE`, appID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE mp_releases SET stage = 'rolled_back', reason = $2, updated_at = now() WHERE app_id = $1 AND stage = 'gray'`, appID, reason)
		if err != nil {
			return err
		}
		if tag.RowsAffected() > 0 {
			return audit(ctx, tx, by, "release.rollback", "app:"+itoa(appID), "gray: "+reason)
		}
		var (
			relID int64
			prev  *int64
		)
		err = tx.QueryRow(ctx, `SELECT id, previous_id FROM mp_releases WHERE app_id = $1 AND stage = 'full'`, appID).Scan(&relID, &prev)
		if err == pgx.ErrNoRows || (err == nil && prev == nil) {
			return jifu.Errorf(jifu.CodeConflict, "marketplace: %s has no earlier version to roll back to", app.Slug)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mp_releases SET stage = 'rolled_back', reason = $2, updated_at = now() WHERE id = $1`, relID, reason); err != nil {
			return err
		}
		// The version before the previous one, so that rolling back again
		// keeps walking back.
		var before *int64
		err = tx.QueryRow(ctx, `SELECT previous_id FROM mp_releases WHERE app_id = $1 AND version_id = $2 AND stage IN ('superseded', 'full')
			ORDER BY id DESC LIMIT 1`, appID, *prev).Scan(&before)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		vs, err := s.versionsQ(ctx, tx, `v.id = $1`, *prev)
		if err != nil || len(vs) == 0 {
			return jifu.Errorf(jifu.CodeInternal, "marketplace: previous version %d of %s is gone: %v", *prev, app.Slug, err)
		}
		if _, err := insertRelease(ctx, tx, by, vs[0], before, StageFull, 10000, Segment{}); err != nil {
			return err
		}
		return audit(ctx, tx, by, "release.rollback", "app:"+itoa(appID), "full back to "+vs[0].Version+": "+reason)
	})
	if err == nil {
		s.changed(app.Slug)
	}
	return err
}

const releaseSelect = `SELECT r.id, r.app_id, r.version_id, v.version, coalesce(r.previous_id, 0), r.stage, r.percent_bp, r.salt,
	r.levels, r.channels, r.regions, r.whitelist, r.reason, r.created_at, r.updated_at
	FROM mp_releases r JOIN mp_versions v ON v.id = r.version_id`

func scanRelease(row pgx.CollectableRow) (*Release, error) {
	var (
		r  Release
		bp int
	)
	err := row.Scan(&r.ID, &r.AppID, &r.VersionID, &r.Version, &r.PreviousID, &r.Stage, &bp, &r.Salt,
		&r.Segment.Levels, &r.Segment.Channels, &r.Segment.Regions, &r.Segment.Whitelist, &r.Reason, &r.CreatedAt, &r.UpdatedAt)
	r.Percent = float64(bp) / 100
	return &r, err
}

func (s *Service) releases(ctx context.Context, q pgx.Rows, err error) ([]*Release, error) {
	if err != nil {
		return nil, s.dbErr(ctx, "releases", err)
	}
	rs, err := pgx.CollectRows(q, scanRelease)
	if err != nil {
		return nil, s.dbErr(ctx, "releases", err)
	}
	return rs, nil
}

// Releases lists an app's releases, newest first.
func (s *Service) Releases(ctx context.Context, by Actor, appID int64) ([]*Release, error) {
	if _, err := s.App(ctx, by, appID); err != nil {
		return nil, err
	}
	q, err := s.pool.Query(ctx, releaseSelect+` WHERE r.app_id = $1 ORDER BY r.id DESC`, appID)
	return s.releases(ctx, q, err)
}

// ActiveReleases returns an app's current full and gray releases (either
// may be nil).
func (s *Service) ActiveReleases(ctx context.Context, by Actor, appID int64) (full, gray *Release, err error) {
	if _, err := s.App(ctx, by, appID); err != nil {
		return nil, nil, err
	}
	return s.activeReleases(ctx, appID)
}

func (s *Service) activeReleases(ctx context.Context, appID int64) (full, gray *Release, err error) {
	q, err := s.pool.Query(ctx, releaseSelect+` WHERE r.app_id = $1 AND r.stage IN ('full', 'gray')`, appID)
	rs, err := s.releases(ctx, q, err)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rs {
		if r.Stage == StageFull {
			full = r
		} else {
			gray = r
		}
	}
	return full, gray, nil
}

// Choose decides which release serves user (a UserRef) with profile p: the
// gray release when the user is on its whitelist, or in its segment with a
// sticky bucket below its percentage; otherwise the full one. nil when
// neither applies (nothing released to this user).
func Choose(full, gray *Release, user string, p Profile) *Release {
	if gray != nil {
		if slices.Contains(gray.Segment.Whitelist, user) {
			return gray
		}
		if (len(gray.Segment.Levels)+len(gray.Segment.Channels)+len(gray.Segment.Regions) > 0 || len(gray.Segment.Whitelist) == 0) &&
			gray.Segment.Matches(p) && Bucket(gray.Salt, user) < int(math.Round(gray.Percent*100)) {
			return gray
		}
	}
	return full
}

// ReleaseCheck is one gray release's health as EvaluateReleases saw it.
type ReleaseCheck struct {
	Slug                    string
	ReleaseID               int64
	GrayCalls, GrayErrors   int64
	StableCalls, StableErrs int64
	GrayRate, StableRate    float64
	RolledBack              bool
}

// EvaluateReleases checks every gray release against its stable version
// and rolls back (as System, audited) those whose error rate exceeds the
// stable one's by more than the configured margin over at least the
// minimum sample of gray invocations since the release started. serve runs
// it on a timer.
func (s *Service) EvaluateReleases(ctx context.Context) ([]ReleaseCheck, error) {
	if err := s.stats.flush(ctx); err != nil {
		return nil, err
	}
	q, err := s.pool.Query(ctx, releaseSelect+` WHERE r.stage = 'gray' ORDER BY r.id`)
	grays, err := s.releases(ctx, q, err)
	if err != nil {
		return nil, err
	}
	var out []ReleaseCheck
	for _, g := range grays {
		c := ReleaseCheck{ReleaseID: g.ID}
		since := g.CreatedAt.Truncate(time.Minute)
		err := s.pool.QueryRow(ctx, `SELECT
				coalesce(sum(invocations) FILTER (WHERE version_id = $2 AND stage = 'gray'), 0),
				coalesce(sum(errors) FILTER (WHERE version_id = $2 AND stage = 'gray'), 0),
				coalesce(sum(invocations) FILTER (WHERE stage = 'full'), 0),
				coalesce(sum(errors) FILTER (WHERE stage = 'full'), 0),
				(SELECT slug FROM mp_apps WHERE id = $1)
			FROM mp_stats WHERE app_id = $1 AND minute >= $3`, g.AppID, g.VersionID, since).
			Scan(&c.GrayCalls, &c.GrayErrors, &c.StableCalls, &c.StableErrs, &c.Slug)
		if err != nil {
			return out, s.dbErr(ctx, "evaluate releases", err)
		}
		if c.GrayCalls > 0 {
			c.GrayRate = float64(c.GrayErrors) / float64(c.GrayCalls)
		}
		if c.StableCalls > 0 {
			c.StableRate = float64(c.StableErrs) / float64(c.StableCalls)
		}
		if c.GrayCalls >= s.cfg.AutoRollback.MinSample && c.GrayRate-c.StableRate > s.cfg.AutoRollback.Margin {
			reason := fmt.Sprintf("automatic: gray error rate %.1f%% over %d calls vs stable %.1f%% (margin %.1f points)",
				100*c.GrayRate, c.GrayCalls, 100*c.StableRate, 100*s.cfg.AutoRollback.Margin)
			if err := s.Rollback(ctx, System, g.AppID, reason); err != nil && jifu.ErrorCode(err) != jifu.CodeConflict {
				return out, err
			}
			c.RolledBack = true
			s.log.WarnContext(ctx, "gray release rolled back", "app", c.Slug, "release", g.ID, "reason", reason)
		}
		out = append(out, c)
	}
	return out, nil
}
