package escrow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ledger"
)

const custodyName = "custody"

func ledgerCaller(app string) string { return "escrow:" + app }

func custodyOwner(app, role, user string) ledger.Owner {
	if role == RolePlatform {
		return ledger.Owner{Type: ledger.OwnerEscrow, ID: app + "/platform"}
	}
	return ledger.Owner{Type: ledger.OwnerEscrow, ID: app + "/" + role + "/" + user}
}

func loanOwner(app, bidNo string) ledger.Owner {
	return ledger.Owner{Type: ledger.OwnerEscrow, ID: app + "/loan/" + bidNo}
}

// Call decodes the JSON request body of operation op and runs it for a: the
// host capability's single entry. A refusal is an error carrying a Reason
// (ReasonOf); any other error is internal or unavailable.
func (s *Service) Call(ctx context.Context, a Actor, op string, body []byte) (Response, error) {
	if a.App == "" || len(a.App) > MaxAppBytes || strings.ContainsAny(a.App, "/") {
		return Response{}, fail(ErrInvalid, "app must be 1..%d bytes without /", MaxAppBytes)
	}
	req, err := Decode(op, body)
	if err != nil {
		return Response{}, err
	}
	switch r := req.(type) {
	case *OpenAccount:
		return s.OpenAccount(ctx, a, *r)
	case *SMSConfirm:
		return s.SMSConfirm(ctx, a, *r)
	case *RegisterLoan:
		return s.RegisterLoan(ctx, a, *r)
	case *RegisterGuarantor:
		return s.RegisterGuarantor(ctx, a, *r)
	case *Bid:
		return s.Bid(ctx, a, *r)
	case *RegisterDebtTransfer:
		return s.RegisterDebtTransfer(ctx, a, *r)
	case *Transfer:
		return s.Transfer(ctx, a, *r)
	case *Repay:
		return s.Repay(ctx, a, *r)
	case *Unfreeze:
		return s.Unfreeze(ctx, a, *r)
	case *TopUp:
		return s.TopUp(ctx, a, *r)
	case *WithholdTopUp:
		return s.WithholdTopUp(ctx, a, *r)
	case *Withdraw:
		return s.Withdraw(ctx, a, *r)
	case *Authorize:
		return s.Authorize(ctx, a, *r)
	case *Revoke:
		return s.Revoke(ctx, a, *r)
	case *Cancel:
		return s.Cancel(ctx, a, *r)
	case *Query:
		return s.Query(ctx, a, *r)
	case *Balance:
		return s.Balance(ctx, a, *r)
	}
	return Response{}, fail(ErrInvalid, "unknown operation %q", op)
}

// stored is an existing request row.
type stored struct {
	op    string
	state string
	user  string
	req   []byte
	resp  Response
}

func digest(op, user string, body []byte) []byte {
	h := sha256.New()
	for _, s := range []string{"jifu.escrow.v1", op, user} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	h.Write(body)
	return h.Sum(nil)
}

// claim takes the bill number for this request: it inserts the request row
// (state), or, when the bill exists, locks and returns it, refusing other
// content with ErrIdempotencyConflict.
func (s *Service) claim(ctx context.Context, tx pgx.Tx, a Actor, op, bill string, req any, state string) (*stored, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "escrow: encoding the request: %w", err)
	}
	d := digest(op, a.User, body)
	now := s.now()
	tag, err := tx.Exec(ctx, `
		INSERT INTO escrow_requests (app, bill_no, op, digest, state, actor_user, request, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING`,
		a.App, bill, op, d, state, a.User, body, now)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 1 {
		return nil, nil
	}
	p, dg, err := s.load(ctx, tx, a.App, bill, true)
	if err != nil {
		return nil, err
	}
	if p.op != op || !bytes.Equal(dg, d) {
		return nil, fail(ErrIdempotencyConflict, "MerBillNo %s was used for another request", bill)
	}
	return p, nil
}

func (s *Service) load(ctx context.Context, tx pgx.Tx, app, bill string, lock bool) (*stored, []byte, error) {
	q := `SELECT op, digest, state, actor_user, request, response FROM escrow_requests WHERE app = $1 AND bill_no = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	var (
		p    stored
		dg   []byte
		resp []byte
	)
	err := tx.QueryRow(ctx, q, app, bill).Scan(&p.op, &dg, &p.state, &p.user, &p.req, &resp)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fail(ErrNotFound, "no request with MerBillNo %s", bill)
	}
	if err != nil {
		return nil, nil, err
	}
	if resp != nil {
		if err := json.Unmarshal(resp, &p.resp); err != nil {
			return nil, nil, jifu.Errorf(jifu.CodeInternal, "escrow: stored response of %s: %w", bill, err)
		}
	}
	return &p, dg, nil
}

func (s *Service) finish(ctx context.Context, tx pgx.Tx, app, bill string, r Response) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE escrow_requests SET state = $3, response = $4, updated_at = $5 WHERE app = $1 AND bill_no = $2`,
		app, bill, r.State, body, s.now())
	return err
}

// replay turns a stored request into the answer of its replay: a failed
// request fails again with its reason.
func replay(p *stored) (Response, error) {
	r := p.resp
	r.Replayed = true
	if p.state == StateFailed {
		return r, fail(Reason(r.ErrCode), "%s", r.ErrMsg)
	}
	return r, nil
}

// run is the frame of every money-moving request: in one transaction it
// claims the bill number (replaying a stored answer), runs fn and stores its
// response.
func (s *Service) run(ctx context.Context, a Actor, op, bill string, req any, state string,
	fn func(tx pgx.Tx, l *ledger.Ledger) (Response, error)) (Response, error) {
	var (
		resp  Response
		prior *stored
	)
	err := s.inTx(ctx, func(tx pgx.Tx, l *ledger.Ledger) error {
		p, err := s.claim(ctx, tx, a, op, bill, req, state)
		prior = p
		if err != nil || p != nil {
			return err
		}
		r, err := fn(tx, l)
		if err != nil {
			return err
		}
		r.ErrCode, r.MerBillNo, r.Op = "ok", bill, op
		if r.State == "" {
			r.State = state
		}
		resp = r
		return s.finish(ctx, tx, a.App, bill, r)
	})
	if err != nil {
		return Response{}, err
	}
	if prior != nil {
		if prior.state == StateBankPending {
			return s.settleBank(ctx, a.App, bill)
		}
		return replay(prior)
	}
	if resp.State == StateBankPending {
		return s.settleBank(ctx, a.App, bill)
	}
	return resp, nil
}

// actFor checks that a may move user's money: a.User is user (the user
// confirmed it in the app), or user's live standing authorization of kind
// covers amount, which the check consumes atomically (auto_bid totals).
// kind "" means only the user may. It reports whether an authorization was
// used.
func (s *Service) actFor(ctx context.Context, tx pgx.Tx, a Actor, user, kind string, amount int64, bidNo string, rate decimal.Decimal) (bool, error) {
	if a.User == user {
		return false, nil
	}
	if kind == "" {
		return false, fail(ErrDenied, "only the user %q may make this request", user)
	}
	return true, s.useMandate(ctx, tx, a.App, user, kind, amount, bidNo, rate)
}

// useMandate consumes amount of user's standing authorization of kind, or
// fails with ErrNotAuthorized when none covers it.
func (s *Service) useMandate(ctx context.Context, tx pgx.Tx, app, user, kind string, amount int64, bidNo string, rate decimal.Decimal) error {
	tag, err := tx.Exec(ctx, `
		UPDATE escrow_authorizations SET used = used + $4
		WHERE app = $1 AND user_id = $2 AND kind = $3 AND revoked_at IS NULL AND valid_until > $5
		  AND max_amount >= $4 AND (total_limit = 0 OR used + $4 <= total_limit)
		  AND (bid_no = '' OR bid_no = $6) AND min_rate <= $7::numeric`,
		app, user, kind, amount, s.now(), bidNo, rate.String())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fail(ErrNotAuthorized, "no live %s authorization of %q covers %d fen", kind, user, amount)
	}
	return nil
}

// custody returns the ledger account of user's custody account in role.
func (s *Service) custody(ctx context.Context, tx pgx.Tx, app, user, role string) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT account_id FROM escrow_accounts WHERE app = $1 AND user_id = $2 AND role = $3`,
		app, user, role).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fail(ErrNotFound, "%q has no %s custody account", user, role)
	}
	return id, err
}

type loan struct {
	bidNo, borrower, guarantor      string
	amount, compensated, compRepaid int64
	released                        int64
	rate                            decimal.Decimal
	deadline                        time.Time
	capacity, bMargin, gMargin      int64
}

func (s *Service) loan(ctx context.Context, tx pgx.Tx, app, bidNo string, lock bool) (*loan, error) {
	q := `SELECT bid_no, borrower, coalesce(guarantor, ''), amount, compensated, comp_repaid, released, rate::text,
		deadline, capacity_id, borrower_margin_id, guarantor_margin_id FROM escrow_loans WHERE app = $1 AND bid_no = $2`
	if lock {
		// NO KEY UPDATE: it serializes the listing's own changes but not the
		// key-share locks a bid's foreign key takes, so a bid holding the
		// capacity account never waits here for a release that waits for it.
		q += ` FOR NO KEY UPDATE`
	}
	var (
		ln   loan
		rate string
	)
	err := tx.QueryRow(ctx, q, app, bidNo).Scan(&ln.bidNo, &ln.borrower, &ln.guarantor, &ln.amount, &ln.compensated,
		&ln.compRepaid, &ln.released, &rate, &ln.deadline, &ln.capacity, &ln.bMargin, &ln.gMargin)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fail(ErrNotFound, "no listing %s", bidNo)
	}
	if err != nil {
		return nil, err
	}
	ln.rate, err = decimal.NewFromString(rate)
	return &ln, err
}

// ProRata splits amount fen over the weights (their Amount fields) by the
// package's rounding rule: each gets floor(amount × weight / total), exact;
// the remainder goes to the largest weight, ties to the one listed last.
// Lines of zero are kept; weights must be positive with a positive total.
func ProRata(amount int64, weights []Line) []Line {
	out := make([]Line, len(weights))
	var total decimal.Decimal
	for _, w := range weights {
		total = total.Add(decimal.NewFromInt(w.Amount))
	}
	a := decimal.NewFromInt(amount)
	var sum int64
	largest := 0
	for i, w := range weights {
		q, _ := a.Mul(decimal.NewFromInt(w.Amount)).QuoRem(total, 0)
		out[i] = Line{User: w.User, Amount: q.IntPart()}
		sum += out[i].Amount
		if w.Amount >= weights[largest].Amount {
			largest = i
		}
	}
	if len(out) > 0 {
		out[largest].Amount += amount - sum
	}
	return out
}

// holdings returns the claims on a listing with principal, sorted by holder;
// only (when given) those of the listed holders, each of which must hold.
func (s *Service) holdings(ctx context.Context, tx pgx.Tx, app, bidNo string, only []string) ([]Line, error) {
	rows, err := tx.Query(ctx, `SELECT holder, principal FROM escrow_claims
		WHERE app = $1 AND bid_no = $2 AND principal > 0 ORDER BY holder`, app, bidNo)
	if err != nil {
		return nil, err
	}
	hs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Line, error) {
		var l Line
		return l, r.Scan(&l.User, &l.Amount)
	})
	if err != nil {
		return nil, err
	}
	if len(only) > 0 {
		keep := map[string]bool{}
		for _, u := range only {
			keep[u] = true
		}
		var f []Line
		for _, h := range hs {
			if keep[h.User] {
				f = append(f, h)
				delete(keep, h.User)
			}
		}
		for u := range keep {
			return nil, fail(ErrNotFound, "%q holds no claim on %s", u, bidNo)
		}
		hs = f
	}
	if len(hs) == 0 {
		return nil, fail(ErrWrongState, "listing %s has no claim holders", bidNo)
	}
	return hs, nil
}

// payOut books amount from the account `from` to the holders pro rata in
// one batch, and returns the lines.
func (s *Service) payOut(ctx context.Context, tx pgx.Tx, l *ledger.Ledger, app, bill string, from int64, amount int64,
	hs []Line, code string) ([]Line, error) {
	lines := ProRata(amount, hs)
	var ts []ledger.Transfer
	for i, ln := range lines {
		if ln.Amount == 0 {
			continue
		}
		to, err := s.custody(ctx, tx, app, ln.User, RoleInvestor)
		if err != nil {
			return nil, err
		}
		ts = append(ts, ledger.Transfer{ID: fmt.Sprintf("%s/%d", bill, i), Debit: from, Credit: to, Amount: ln.Amount,
			Code: code, Metadata: map[string]string{"bill": bill}})
	}
	if _, err := l.Submit(ctx, ledgerCaller(app), ts); err != nil {
		return nil, fromLedger(err, ErrInsufficientFunds, "the payer cannot cover "+code)
	}
	return lines, nil
}

func (s *Service) account(ctx context.Context, l *ledger.Ledger, owner ledger.Owner, name string, flags ledger.Flags) (int64, error) {
	a, err := l.CreateAccount(ctx, ledger.AccountSpec{Owner: owner, Name: name, Flags: flags})
	return a.ID, err
}

// smsCode creates the SMS challenge of request bill and sends its code to
// user.
func (s *Service) smsCode(ctx context.Context, tx pgx.Tx, app, bill, user, purpose string) error {
	var b [8]byte
	if _, err := s.cfg.Rand.Read(b[:]); err != nil {
		return jifu.Errorf(jifu.CodeInternal, "escrow: random: %w", err)
	}
	code := fmt.Sprintf("%06d", binary.BigEndian.Uint64(b[:])%1_000_000)
	if _, err := tx.Exec(ctx, `INSERT INTO escrow_sms (app, bill_no, user_id, code_hash, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		app, bill, user, codeHash(app, bill, code), s.now().Add(s.cfg.SMSCodeTTL)); err != nil {
		return err
	}
	text := fmt.Sprintf("【%s】%s验证码 %s，%d分钟内有效，请勿告诉他人。", app, purpose, code, int(s.cfg.SMSCodeTTL/time.Minute))
	if err := s.cfg.SMS.SendSMS(ctx, user, text); err != nil {
		if jifu.ErrorCode(err) == jifu.CodeLimit {
			return fail(ErrSMSLimit, "too many codes sent to %q's phone; try later", user)
		}
		return jifu.Errorf(jifu.CodeUnavailable, "escrow: sending the SMS code: %w", err)
	}
	return nil
}

func codeHash(app, bill, code string) []byte {
	h := sha256.Sum256([]byte(app + "\x00" + bill + "\x00" + code))
	return h[:]
}

// maxSMSAttempts wrong codes end a challenge.
const maxSMSAttempts = 5

func maskID(id string) string {
	r := []rune(id)
	if len(r) <= 4 {
		return strings.Repeat("*", len(r))
	}
	return string(r[:1]) + strings.Repeat("*", len(r)-4) + string(r[len(r)-3:])
}

func sortedUnique(v []string) []string {
	out := append([]string(nil), v...)
	sort.Strings(out)
	j := 0
	for i := range out {
		if i == 0 || out[i] != out[i-1] {
			out[j] = out[i]
			j++
		}
	}
	return out[:j]
}

// compareCode reports whether code matches the stored hash, in constant time.
func compareCode(app, bill, code string, hash []byte) bool {
	return subtle.ConstantTimeCompare(codeHash(app, bill, code), hash) == 1
}
