package marketplace

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEntry is one recorded staff or system action.
type AuditEntry struct {
	ID        int64
	At        time.Time
	ActorID   int64 // 0 for System
	ActorRole Role
	Action    string // e.g. version.approve, release.rollback, user.update
	Target    string // e.g. version:12, app:3, u42
	Detail    string
}

// AuditLog lists recorded actions, newest first, optionally for one target
// ("" for all), at most limit (≤ 500). Admins, risk staff and reviewers.
func (s *Service) AuditLog(ctx context.Context, by Actor, target string, limit int) ([]AuditEntry, error) {
	if !by.Is(RoleAdmin, RoleRisk, RoleReviewer, RoleSystem) {
		return nil, denied("only staff read the audit log")
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, coalesce(actor_id, 0), actor_role, action, target, detail FROM mp_audit
		WHERE ($1 = '' OR target = $1) ORDER BY id DESC LIMIT $2`, target, limit)
	if err != nil {
		return nil, s.dbErr(ctx, "audit log", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var (
			e    AuditEntry
			role string
		)
		err := r.Scan(&e.ID, &e.At, &e.ActorID, &role, &e.Action, &e.Target, &e.Detail)
		e.ActorRole = Role(role)
		return e, err
	})
	if err != nil {
		return nil, s.dbErr(ctx, "audit log", err)
	}
	return out, nil
}
