package marketplace

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu/host/notify"
)

// DeveloperKind is what kind of party a developer is (第三方: 个人开发者,
// 合作商, 商户, 渠道, 机构).
type DeveloperKind string

// Developer kinds.
const (
	KindIndividual  DeveloperKind = "individual"
	KindPartner     DeveloperKind = "partner"
	KindMerchant    DeveloperKind = "merchant"
	KindChannel     DeveloperKind = "channel"
	KindInstitution DeveloperKind = "institution"
)

// DeveloperKinds lists the kinds in display order.
var DeveloperKinds = []DeveloperKind{KindIndividual, KindPartner, KindMerchant, KindChannel, KindInstitution}

// ServiceLevel bounds the scopes a developer's apps may request (根据需要服务
// 的级别, 进件). A developer starts at LevelBasic and applies for more; an
// admin approves.
type ServiceLevel struct {
	Name        string
	Description string
	Scopes      []string // scopes allowed; nil with All set means every scope the host offers
	All         bool
}

// Service level names.
const (
	LevelBasic    = "basic"
	LevelStandard = "standard"
	LevelAdvanced = "advanced"
	LevelFull     = "full"
)

// ServiceLevels lists the levels from lowest to highest.
var ServiceLevels = []ServiceLevel{
	{Name: LevelBasic, Description: "Own storage and push notices", Scopes: []string{"storage", "notify.push"}},
	{Name: LevelStandard, Description: "Basic profile, SMS, creating payments",
		Scopes: []string{"storage", "notify.push", "notify.sms", "user.basic", "payment.create"}},
	{Name: LevelAdvanced, Description: "Real-name status, addresses, risk score, refunds",
		Scopes: []string{"storage", "notify.push", "notify.sms", "user.basic", "payment.create",
			"user.realname", "user.address", "credit.score", "payment.refund"}},
	{Name: LevelFull, Description: "Every capability, including credit lines and escrow", All: true},
}

// Level returns the named service level.
func Level(name string) (ServiceLevel, bool) {
	for _, l := range ServiceLevels {
		if l.Name == name {
			return l, true
		}
	}
	return ServiceLevel{}, false
}

// Allows reports whether the level lets an app request scope.
func (l ServiceLevel) Allows(scope string) bool { return l.All || slices.Contains(l.Scopes, scope) }

// Developer statuses.
const (
	DeveloperPending  = "pending"  // registered or applied for a level; awaiting an admin
	DeveloperApproved = "approved" // the requested level was granted
	DeveloperRejected = "rejected" // the last application was refused (the granted level stays)
)

// Developer is a party publishing apps.
type Developer struct {
	ID             int64
	Name           string
	Kind           DeveloperKind
	Status         string
	Level          string // granted service level
	RequestedLevel string
	Phone          string
	ReviewComment  string
	CreatedAt      time.Time
}

// Registration is a developer's sign-up: the organisation (or person) and
// its first login.
type Registration struct {
	Email, Password string
	Name            string // the person
	Organisation    string // the developer's name; the person's when empty
	Kind            DeveloperKind
	Phone           string // contact mobile
	Level           string // the service level applied for; default basic
}

// RegisterDeveloper creates a developer (pending, at LevelBasic until an
// admin grants the level applied for) and its first developer account.
func (s *Service) RegisterDeveloper(ctx context.Context, r Registration) (*Account, error) {
	if !slices.Contains(DeveloperKinds, r.Kind) {
		return nil, invalid("developer kind %q is not one of individual, partner, merchant, channel, institution", r.Kind)
	}
	if r.Level == "" {
		r.Level = LevelBasic
	}
	if _, ok := Level(r.Level); !ok {
		return nil, invalid("service level %q is unknown", r.Level)
	}
	if r.Phone != "" && !notify.ValidPhone(r.Phone) {
		return nil, invalid("%q is not a mobile number", r.Phone)
	}
	org := r.Organisation
	if org == "" {
		org = r.Name
	}
	org, err := checkName("organisation", org, 64)
	if err != nil {
		return nil, err
	}
	var acct *Account
	err = s.tx(ctx, "register developer", func(tx pgx.Tx) error {
		var devID int64
		status := DeveloperPending
		if r.Level == LevelBasic {
			status = DeveloperApproved // nothing to approve
		}
		if err := tx.QueryRow(ctx, `INSERT INTO mp_developers (name, kind, status, level, requested_level, contact_phone)
			VALUES ($1, $2, $3, 'basic', $4, $5) RETURNING id`, org, string(r.Kind), status, r.Level, r.Phone).Scan(&devID); err != nil {
			return err
		}
		var err error
		acct, err = s.insertAccount(ctx, tx, r.Email, r.Name, r.Password, RoleDeveloper, devID)
		return err
	})
	return acct, err
}

// Developer returns a developer: its own for a developer, any for staff.
func (s *Service) Developer(ctx context.Context, by Actor, id int64) (*Developer, error) {
	if by.Role == RoleDeveloper && by.DeveloperID != id {
		return nil, denied("not your developer account")
	}
	rows, err := s.pool.Query(ctx, developerSelect+` WHERE id = $1`, id)
	if err != nil {
		return nil, s.dbErr(ctx, "developer", err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDeveloper)
	if err != nil {
		return nil, s.dbErr(ctx, "developer", err)
	}
	return d, nil
}

// Developers lists developers by status ("" for all), newest first. Staff only.
func (s *Service) Developers(ctx context.Context, by Actor, status string) ([]*Developer, error) {
	if !by.Is(RoleAdmin, RoleReviewer, RoleRisk, RoleSystem) {
		return nil, denied("only staff list developers")
	}
	rows, err := s.pool.Query(ctx, developerSelect+` WHERE ($1 = '' OR status = $1) ORDER BY id DESC`, status)
	if err != nil {
		return nil, s.dbErr(ctx, "developers", err)
	}
	ds, err := pgx.CollectRows(rows, scanDeveloper)
	if err != nil {
		return nil, s.dbErr(ctx, "developers", err)
	}
	return ds, nil
}

const developerSelect = `SELECT id, name, kind, status, level, requested_level, contact_phone, review_comment, created_at FROM mp_developers`

func scanDeveloper(r pgx.CollectableRow) (*Developer, error) {
	var d Developer
	var kind string
	err := r.Scan(&d.ID, &d.Name, &kind, &d.Status, &d.Level, &d.RequestedLevel, &d.Phone, &d.ReviewComment, &d.CreatedAt)
	d.Kind = DeveloperKind(kind)
	return &d, err
}

// ApplyForLevel records a developer's application for a service level; an
// admin decides with DecideDeveloper.
func (s *Service) ApplyForLevel(ctx context.Context, by Actor, level string) error {
	if by.Role != RoleDeveloper {
		return denied("only developers apply for a service level")
	}
	if _, ok := Level(level); !ok {
		return invalid("service level %q is unknown", level)
	}
	_, err := s.pool.Exec(ctx, `UPDATE mp_developers SET requested_level = $2, status = 'pending' WHERE id = $1`, by.DeveloperID, level)
	if err != nil {
		return s.dbErr(ctx, "apply for level", err)
	}
	return nil
}

// DecideDeveloper approves (granting the level applied for) or rejects a
// developer's application. Admins only; audited.
func (s *Service) DecideDeveloper(ctx context.Context, by Actor, id int64, approve bool, comment string) error {
	if !by.Is(RoleAdmin, RoleSystem) {
		return denied("only admins approve developers")
	}
	return s.tx(ctx, "decide developer", func(tx pgx.Tx) error {
		var q string
		action := "developer.reject"
		if approve {
			q = `UPDATE mp_developers SET status = 'approved', level = requested_level, review_comment = $2 WHERE id = $1 RETURNING requested_level`
			action = "developer.approve"
		} else {
			q = `UPDATE mp_developers SET status = 'rejected', review_comment = $2 WHERE id = $1 RETURNING requested_level`
		}
		var level string
		if err := tx.QueryRow(ctx, q, id, comment).Scan(&level); err != nil {
			return err
		}
		return audit(ctx, tx, by, action, "developer:"+itoa(id), "level "+level+": "+comment)
	})
}
