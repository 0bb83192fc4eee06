package marketplace

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/manifest"
)

// Version statuses, in lifecycle order.
const (
	StatusCheckFailed = "check_failed" // a self-test failed: fix and upload a new version
	StatusChecked     = "checked"      // automated checks passed; the developer may submit it
	StatusInReview    = "in_review"    // in the reviewers' queue
	StatusApproved    = "approved"     // may be released
	StatusRejected    = "rejected"     // refused by a reviewer, with a comment
)

// CodeScopeNotAllowed is the problem code of a scope above the developer's
// service level.
const CodeScopeNotAllowed = "scope_not_allowed"

// Version is one uploaded version of an app.
type Version struct {
	ID            int64
	AppID         int64
	Slug          string
	Version       string
	SHA256        string // artifact key
	Size          int64
	Manifest      *manifest.Manifest
	Imports       []string // "module.name", sorted
	Status        string
	Report        CheckReport
	ReviewComment string
	ReviewedBy    int64
	ReviewedAt    *time.Time
	UploadedBy    int64
	CreatedAt     time.Time
}

// CheckReport is the result of the automated checks run at upload.
type CheckReport struct {
	Passed    bool               `json:"passed"`
	Problems  []manifest.Problem `json:"problems,omitempty"` // validation problems (a refused upload is not stored)
	SelfTests []SelfTestResult   `json:"self_tests"`
	Size      int                `json:"size"`
	MaxSize   int                `json:"max_size"`
	Limits    manifest.Limits    `json:"limits"`
	Scopes    []string           `json:"scopes"`
	Imports   []string           `json:"imports"`
	CheckedAt time.Time          `json:"checked_at"`
	Duration  time.Duration      `json:"duration_ns"`
}

// SelfTestResult is one self-test request of the manifest, run in the
// sandbox as a synthetic user who consented to every scope of the version.
type SelfTestResult struct {
	Method       string `json:"method"`
	Path         string `json:"path"`
	ExpectStatus int    `json:"expect_status"`
	Status       int    `json:"status"`          // 0 when the invocation failed
	Error        string `json:"error,omitempty"` // code and message of a failed invocation
	DurationMS   int64  `json:"duration_ms"`
	Passed       bool   `json:"passed"`
}

// Problems returns the validation problems carried by an error of
// UploadVersion (nil for other errors).
func Problems(err error) []manifest.Problem {
	var ve *host.ValidationError
	if asValidation(err, &ve) {
		return ve.Problems
	}
	return nil
}

func refused(msg string, ps []manifest.Problem) error {
	return &jifu.Error{Code: jifu.CodeInvalid, Message: "marketplace: " + msg, Err: &host.ValidationError{Problems: ps}}
}

// UploadVersion stores a new version of an app after the automated checks:
// size, that the bytes are WebAssembly, the manifest (its slug must be the
// app's, its scopes within the developer's service level), the host's
// validation (imports, declared scopes, exports, limits), and a sandbox run
// of the manifest's self-test requests. A module the checks refuse is not
// stored: CodeTooLarge for size, CodeInvalid with Problems(err) listing every
// reason otherwise, CodeConflict for a version number the app already has.
// A version whose self-tests fail is stored as StatusCheckFailed with its
// report, so the developer sees what failed.
func (s *Service) UploadVersion(ctx context.Context, by Actor, appID int64, wasm, manifestJSON []byte) (*Version, error) {
	app, err := s.ownApp(ctx, by, appID)
	if err != nil {
		return nil, err
	}
	start := s.now()
	if len(wasm) > s.cfg.MaxUpload {
		return nil, jifu.Errorf(jifu.CodeTooLarge, "marketplace: the module is %d bytes, at most %d", len(wasm), s.cfg.MaxUpload)
	}
	if !IsWasm(wasm) {
		return nil, refused("the upload is not a WebAssembly module", []manifest.Problem{{Code: manifest.CodeModuleInvalid,
			Message: "the file does not start with the WebAssembly header (\\0asm, version 1)"}})
	}
	m, ps := manifest.Parse(manifestJSON)
	if len(ps) > 0 {
		return nil, refused("the manifest is invalid", ps)
	}
	if m.Slug != app.Slug {
		return nil, refused("the manifest is for another app", []manifest.Problem{{Code: manifest.CodeField, Field: "slug",
			Message: fmt.Sprintf("manifest slug %q, the app's is %q", m.Slug, app.Slug)}})
	}
	dev, err := s.Developer(ctx, System, app.DeveloperID)
	if err != nil {
		return nil, err
	}
	level, _ := Level(dev.Level)
	for i, sc := range m.Scopes {
		if !level.Allows(sc) {
			ps = append(ps, manifest.Problem{Code: CodeScopeNotAllowed, Field: fmt.Sprintf("scopes[%d]", i),
				Message: fmt.Sprintf("scope %q is above the developer's service level %q; apply for a higher level", sc, dev.Level)})
		}
	}
	ps = append(ps, s.host.Validate(ctx, wasm, m)...)
	if len(ps) > 0 {
		return nil, refused("the module was refused", ps)
	}
	imports, err := ModuleImports(wasm)
	if err != nil {
		return nil, refused("the module was refused", []manifest.Problem{{Code: manifest.CodeModuleInvalid, Message: err.Error()}})
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mp_versions WHERE app_id = $1 AND version = $2)`, appID, m.Version).Scan(&exists); err != nil {
		return nil, s.dbErr(ctx, "upload", err)
	}
	if exists {
		return nil, jifu.Errorf(jifu.CodeConflict, "marketplace: %s already has a version %s; raise the version number", app.Slug, m.Version)
	}

	report := CheckReport{Size: len(wasm), MaxSize: s.cfg.MaxUpload, Limits: m.Limits, Scopes: nonNil(m.Scopes), Imports: imports, CheckedAt: start}
	report.SelfTests = s.selfTest(ctx, app.Slug, wasm, m)
	report.Passed = true
	for _, r := range report.SelfTests {
		report.Passed = report.Passed && r.Passed
	}
	report.Duration = s.now().Sub(start)
	status := StatusChecked
	if !report.Passed {
		status = StatusCheckFailed
	}

	sha := SHA256(wasm)
	if err := s.cfg.Artifacts.Put(ctx, sha, wasm); err != nil {
		return nil, err
	}
	mj, _ := json.Marshal(m)
	rj, _ := json.Marshal(report)
	v := &Version{AppID: appID, Slug: app.Slug, Version: m.Version, SHA256: sha, Size: int64(len(wasm)), Manifest: m,
		Imports: imports, Status: status, Report: report, UploadedBy: by.AccountID}
	var uploader *int64
	if by.AccountID != 0 {
		uploader = &by.AccountID
	}
	err = s.pool.QueryRow(ctx, `INSERT INTO mp_versions (app_id, version, sha256, size, manifest, imports, status, report, uploaded_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, created_at`,
		appID, m.Version, sha, len(wasm), mj, nonNil(imports), status, rj, uploader).Scan(&v.ID, &v.CreatedAt)
	if err != nil {
		if isUnique(err) {
			return nil, jifu.Errorf(jifu.CodeConflict, "marketplace: %s already has a version %s; raise the version number", app.Slug, m.Version)
		}
		return nil, s.dbErr(ctx, "upload", err)
	}
	return v, nil
}

// SandboxNamespace is the kv namespace of an app's sandbox (self-tests and
// sandbox runs), apart from production data.
func SandboxNamespace(slug string) string { return "sandbox:" + slug }

// selfTest loads the module in the sandbox and sends each self-test request
// as a synthetic user holding consent for every scope of the version.
func (s *Service) selfTest(ctx context.Context, slug string, wasm []byte, m *manifest.Manifest) []SelfTestResult {
	results := make([]SelfTestResult, len(m.SelfTest))
	for i, st := range m.SelfTest {
		results[i] = SelfTestResult{Method: st.Method, Path: st.Path, ExpectStatus: st.ExpectStatus}
	}
	if len(m.SelfTest) == 0 {
		return results
	}
	var cfg map[string]string
	if s.cfg.AppConfig != nil {
		cfg, _ = s.cfg.AppConfig(ctx, slug)
	}
	user, release := s.cfg.Consents.synthetic(slug, m.Scopes)
	defer release()
	app, err := s.host.Load(ctx, host.AppSpec{Slug: slug, Namespace: SandboxNamespace(slug), Wasm: wasm, Manifest: m, Config: cfg})
	if err != nil {
		for i := range results {
			results[i].Error = jifu.ErrorCode(err) + ": " + jifu.ErrorMessage(err)
		}
		return results
	}
	defer app.Close(context.WithoutCancel(ctx))
	for i, st := range m.SelfTest {
		path, query, _ := strings.Cut(st.Path, "?")
		t0 := time.Now()
		resp, err := app.HandleHTTP(ctx, host.Caller{User: user}, &abi.Request{Method: st.Method, Path: path, Query: query, Body: []byte(st.Body)})
		results[i].DurationMS = time.Since(t0).Milliseconds()
		if err != nil {
			results[i].Error = jifu.ErrorCode(err) + ": " + jifu.ErrorMessage(err)
			continue
		}
		results[i].Status = resp.Status
		results[i].Passed = resp.Status == st.ExpectStatus
	}
	return results
}

// SubmitVersion puts a checked version into the reviewers' queue.
func (s *Service) SubmitVersion(ctx context.Context, by Actor, versionID int64) error {
	v, err := s.Version(ctx, by, versionID)
	if err != nil {
		return err
	}
	if _, err := s.ownApp(ctx, by, v.AppID); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE mp_versions SET status = 'in_review' WHERE id = $1 AND status = 'checked'`, versionID)
	if err != nil {
		return s.dbErr(ctx, "submit", err)
	}
	if tag.RowsAffected() == 0 {
		return jifu.Errorf(jifu.CodeConflict, "marketplace: version %s is %s; only a checked version can be submitted", v.Version, v.Status)
	}
	return nil
}

const versionSelect = `SELECT v.id, v.app_id, a.slug, v.version, v.sha256, v.size, v.manifest, v.imports, v.status, v.report,
	v.review_comment, coalesce(v.reviewed_by, 0), v.reviewed_at, coalesce(v.uploaded_by, 0), v.created_at
	FROM mp_versions v JOIN mp_apps a ON a.id = v.app_id`

func scanVersion(r pgx.CollectableRow) (*Version, error) {
	var (
		v      Version
		mj, rj []byte
	)
	if err := r.Scan(&v.ID, &v.AppID, &v.Slug, &v.Version, &v.SHA256, &v.Size, &mj, &v.Imports, &v.Status, &rj,
		&v.ReviewComment, &v.ReviewedBy, &v.ReviewedAt, &v.UploadedBy, &v.CreatedAt); err != nil {
		return nil, err
	}
	v.Manifest = &manifest.Manifest{}
	if err := json.Unmarshal(mj, v.Manifest); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(rj, &v.Report); err != nil {
		return nil, err
	}
	return &v, nil
}

func (s *Service) versions(ctx context.Context, where string, args ...any) ([]*Version, error) {
	return s.versionsQ(ctx, s.pool, where, args...)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (s *Service) versionsQ(ctx context.Context, q querier, where string, args ...any) ([]*Version, error) {
	rows, err := q.Query(ctx, versionSelect+` WHERE `+where, args...)
	if err != nil {
		return nil, s.dbErr(ctx, "versions", err)
	}
	vs, err := pgx.CollectRows(rows, scanVersion)
	if err != nil {
		return nil, s.dbErr(ctx, "versions", err)
	}
	return vs, nil
}

// Version returns a version, with App's visibility rules.
func (s *Service) Version(ctx context.Context, by Actor, id int64) (*Version, error) {
	vs, err := s.versions(ctx, `v.id = $1`, id)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: version %d: not found", id)
	}
	if _, err := s.App(ctx, by, vs[0].AppID); err != nil {
		return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: version %d: not found", id)
	}
	return vs[0], nil
}

// Versions lists an app's versions, newest first.
func (s *Service) Versions(ctx context.Context, by Actor, appID int64) ([]*Version, error) {
	if _, err := s.App(ctx, by, appID); err != nil {
		return nil, err
	}
	return s.versions(ctx, `v.app_id = $1 ORDER BY v.id DESC`, appID)
}

// Module returns a version's WebAssembly bytes from the artifact store.
func (s *Service) Module(ctx context.Context, by Actor, versionID int64) ([]byte, error) {
	v, err := s.Version(ctx, by, versionID)
	if err != nil {
		return nil, err
	}
	return s.cfg.Artifacts.Get(ctx, v.SHA256)
}
