// Package acquirersim is a faithful local acquirer: a TCP server speaking
// the platform's acquirer protocol (host/cardpay/iso8583: CUP-style binary
// ISO 8583, 2-byte length framing, UnionPay ECB MAC in field 64). It keeps
// its own journal in PostgreSQL (its own migration set, Migrations) and
// writes a daily settlement file. `jifu acquirer-sim` runs it as a separate
// process; tests start it in-process on 127.0.0.1:0.
//
//	sim, err := acquirersim.New(pool, acquirersim.Config{TMK: tmk, Rules: acquirersim.DefaultRules()})
//	err = sim.Listen("127.0.0.1:0"); go sim.Serve(ctx); addr := sim.Addr()
//
// Behaviour:
//   - 0800 sign-on: new PIN and MAC working keys (double-length), returned in
//     field 62 encrypted under the terminal master key with 4-byte check values.
//     The host is one front-end link to the acquirer: the keys of a sign-on
//     serve every terminal ID the link carries; the last 4 sign-ons' keys
//     stay valid (a rollover window), the answer uses the key that matched.
//   - 0200 purchase (3 000000, 60.1 22), 0200 void (3 200000, 60.1 23, field 37
//     the original RRN), 0220 refund (3 200000, 60.1 25, 37 the original RRN),
//     0400 reversal (11 the original STAN): MAC checked (bad MAC: 39 "A0"),
//     PIN block checked against the PAN under the PIN key (bad: "55").
//   - Rules decide: approve ("00"), decline by amount or by card, answer slowly,
//     drop the connection without answering (after journaling the approval,
//     so that only a reversal undoes it), or answer "A0" to every attempt
//     (a link whose keys never work; nothing journaled).
//   - A retransmitted message (same terminal, STAN, MTI and day) gets the
//     journaled answer again.
package acquirersim

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/iso8583"
	"github.com/jifu-open/jifu/host/cardpay/pan"
	"github.com/jifu-open/jifu/host/cardpay/pinblock"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the simulator's journal (table acqsim_journal).
var Migrations = database.MigrationSet{Name: "acqsim", FS: database.MustSub(migrationFiles, "migrations")}

// Beijing is the acquirer's business day zone (cut-off at midnight CST).
var Beijing = time.FixedZone("CST", 8*3600)

// Rules decide the simulator's answers. Amounts are fen.
type Rules struct {
	DeclineAmount  map[int64]string // amount -> response code
	DeclinePAN     map[string]string
	SlowAmount     map[int64]time.Duration // answer after a delay
	DropAmount     map[int64]bool          // journal, then close without answering
	MACErrorAmount map[int64]bool          // answer "A0" (MAC error) whatever the keys, journaling nothing: a link whose keys never work
}

// DefaultRules: 4444 fen "51" (insufficient funds), 5555 fen "05" (do not
// honour), 7777 fen answers after 3 s, 8888 fen drops the connection, 6666
// fen is answered "A0" (MAC error) however often the host signs on.
func DefaultRules() Rules {
	return Rules{
		DeclineAmount:  map[int64]string{4444: "51", 5555: "05"},
		DeclinePAN:     map[string]string{},
		SlowAmount:     map[int64]time.Duration{7777: 3 * time.Second},
		DropAmount:     map[int64]bool{8888: true},
		MACErrorAmount: map[int64]bool{6666: true},
	}
}

// Config configures a simulator.
type Config struct {
	TMK    dukpt.Key // terminal master key shared with the host
	Rules  Rules
	Logger *slog.Logger
	Now    func() time.Time
}

// Sim is the simulator. Its methods are safe for concurrent use.
type Sim struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger

	mu      sync.Mutex
	keys    []workKeys // of the last sign-ons, newest first (a rollover window)
	signOns int
	ln      net.Listener
	wg      sync.WaitGroup
}

// SignOns reports how many sign-ons the simulator answered.
func (s *Sim) SignOns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signOns
}

type workKeys struct{ pik, mak dukpt.Key }

// maxKeyGenerations is how many sign-ons' working keys stay valid: a link
// whose peer signed on again keeps working while it rolls over.
const maxKeyGenerations = 4

// New returns a simulator journaling to pool (migrated with Migrations).
func New(pool *pgxpool.Pool, cfg Config) *Sim {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sim{pool: pool, cfg: cfg, log: cfg.Logger}
}

// Listen binds addr.
func (s *Sim) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "acquirersim: listen %s: %w", addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address.
func (s *Sim) Addr() string { return s.ln.Addr().String() }

// Serve accepts connections until ctx ends, then closes the listener and
// waits for open connections to finish.
func (s *Sim) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	var conns sync.Map
	defer func() {
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		s.wg.Wait()
	}()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return jifu.Errorf(jifu.CodeUnavailable, "acquirersim: accept: %w", err)
		}
		conns.Store(c, true)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conns.Delete(c)
			defer c.Close()
			s.serveConn(ctx, c)
		}()
	}
}

var errDrop = errors.New("drop the connection")

func (s *Sim) serveConn(ctx context.Context, c net.Conn) {
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		b, err := iso8583.ReadFrame(c)
		if err != nil {
			return
		}
		resp, delay, err := s.Handle(ctx, b)
		if errors.Is(err, errDrop) {
			return
		}
		if err != nil {
			s.log.WarnContext(ctx, "acquirersim: message refused", "err", err)
			return
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
		}
		if err := iso8583.WriteFrame(c, resp); err != nil {
			return
		}
	}
}

// Handle answers one packed message: the packed response, how long to wait
// before sending it, or errDrop. Exported for tests of the wire.
func (s *Sim) Handle(ctx context.Context, b []byte) ([]byte, time.Duration, error) {
	m, err := iso8583.Unpack(b)
	if err != nil {
		return nil, 0, err
	}
	if m.MTI == iso8583.MTISignOn {
		return s.signOn(m)
	}
	s.mu.Lock()
	gens := s.keys
	s.mu.Unlock()
	resp := &iso8583.Message{
		MTI: respMTI(m.MTI), PAN: m.PAN, ProcessingCode: m.ProcessingCode, Amount: m.Amount, STAN: m.STAN,
		Condition: m.Condition, TerminalID: m.TerminalID, MerchantID: m.MerchantID, Currency: m.Currency,
		Field60: m.Field60, MAC: []byte{},
	}
	if len(gens) == 0 {
		resp.ResponseCode, resp.MAC = "A7", nil // not signed on
		out, err := iso8583.Pack(resp, nil)
		return out, 0, err
	}
	wk, ok := gens[0], false
	for _, g := range gens {
		if iso8583.VerifyMAC(b, g.mak[:]) == nil {
			wk, ok = g, true
			break
		}
	}
	if !ok || (m.MTI != iso8583.MTIReversal && s.cfg.Rules.MACErrorAmount[m.Amount]) {
		resp.ResponseCode = "A0"
		out, err := iso8583.Pack(resp, wk.mak[:])
		return out, 0, err
	}
	kind, err := kindOf(m)
	if err != nil {
		resp.ResponseCode = "12" // invalid transaction
		out, err := iso8583.Pack(resp, wk.mak[:])
		return out, 0, err
	}
	j, err := s.journal(ctx, m, kind, wk)
	if err != nil {
		return nil, 0, err
	}
	resp.ResponseCode, resp.RRN, resp.AuthCode = j.code, j.rrn, j.auth
	out, err := iso8583.Pack(resp, wk.mak[:])
	if err != nil {
		return nil, 0, err
	}
	if kind == "purchase" && s.cfg.Rules.DropAmount[m.Amount] {
		return nil, 0, errDrop
	}
	if kind == "purchase" {
		return out, s.cfg.Rules.SlowAmount[m.Amount], nil
	}
	return out, 0, nil
}

func respMTI(mti string) string {
	return mti[:2] + string(mti[2]+1) + mti[3:]
}

func kindOf(m *iso8583.Message) (string, error) {
	typ := ""
	if len(m.Field60) >= 2 {
		typ = m.Field60[:2]
	}
	switch {
	case m.MTI == iso8583.MTIFinancial && m.ProcessingCode == iso8583.ProcPurchase && typ == iso8583.TypePurchase:
		return "purchase", nil
	case m.MTI == iso8583.MTIFinancial && m.ProcessingCode == iso8583.ProcVoidRefund && typ == iso8583.TypeVoid:
		return "void", nil
	case m.MTI == iso8583.MTIAdvice && m.ProcessingCode == iso8583.ProcVoidRefund && typ == iso8583.TypeRefund:
		return "refund", nil
	case m.MTI == iso8583.MTIReversal:
		return "reversal", nil
	}
	return "", jifu.Errorf(jifu.CodeInvalid, "acquirersim: unknown transaction")
}

// CheckValue is the first 4 bytes of the key's TDES encryption of zeros.
func CheckValue(k dukpt.Key) []byte {
	out := make([]byte, 8)
	dukpt.TDES(k).Encrypt(out, make([]byte, 8))
	return out[:4]
}

func (s *Sim) signOn(m *iso8583.Message) ([]byte, time.Duration, error) {
	var wk workKeys
	if _, err := io.ReadFull(rand.Reader, wk.pik[:]); err != nil {
		return nil, 0, err
	}
	if _, err := io.ReadFull(rand.Reader, wk.mak[:]); err != nil {
		return nil, 0, err
	}
	tmk := dukpt.TDES(s.cfg.TMK)
	f62 := make([]byte, 0, 40)
	for _, k := range []dukpt.Key{wk.pik, wk.mak} {
		enc := make([]byte, 16)
		tmk.Encrypt(enc[:8], k[:8])
		tmk.Encrypt(enc[8:], k[8:])
		f62 = append(append(f62, enc...), CheckValue(k)...)
	}
	s.mu.Lock()
	s.keys = append([]workKeys{wk}, s.keys[:min(len(s.keys), maxKeyGenerations-1)]...)
	s.signOns++
	s.mu.Unlock()
	out, err := iso8583.Pack(&iso8583.Message{MTI: iso8583.MTISignOnResp, STAN: m.STAN, ResponseCode: "00",
		TerminalID: m.TerminalID, MerchantID: m.MerchantID, Field60: m.Field60, Keys: f62}, nil)
	return out, 0, err
}

type entry struct{ code, rrn, auth string }

// journal decides and records the answer to a financial message; a
// retransmission gets the recorded answer. RRN and authorization code derive
// from the journal row's id. A purchase is one statement; a void, refund or
// reversal updates its original in the same transaction.
func (s *Sim) journal(ctx context.Context, m *iso8583.Message, kind string, wk workKeys) (entry, error) {
	day := s.cfg.Now().In(Beijing).Format("2006-01-02")
	var e entry
	insert := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}, code, status, orig string) error {
		err := q.QueryRow(ctx, `INSERT INTO acqsim_journal (settle_date, mti, kind, tid, mid, stan, orig_rrn, amount, pan, response_code, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (tid, stan, mti, settle_date) DO NOTHING RETURNING response_code, rrn, auth_code`,
			day, m.MTI, kind, m.TerminalID, m.MerchantID, m.STAN, orig, m.Amount, pan.Mask(m.PAN), code, status).Scan(&e.code, &e.rrn, &e.auth)
		if errors.Is(err, pgx.ErrNoRows) { // retransmission
			err = q.QueryRow(ctx, `SELECT response_code, rrn, auth_code FROM acqsim_journal
				WHERE tid = $1 AND stan = $2 AND mti = $3 AND settle_date = $4`, m.TerminalID, m.STAN, m.MTI, day).Scan(&e.code, &e.rrn, &e.auth)
		}
		return err
	}
	var err error
	if kind == "purchase" {
		code, status := s.decidePurchase(m, wk)
		err = insert(s.pool, code, status, "")
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			code, status, orig := s.decide(ctx, tx, m, kind)
			return insert(tx, code, status, orig)
		})
	}
	if err != nil {
		return e, database.QueryError(ctx, "acquirersim: journal", err)
	}
	return e, nil
}

// decidePurchase applies the rules to a purchase.
func (s *Sim) decidePurchase(m *iso8583.Message, wk workKeys) (code, status string) {
	if m.Amount <= 0 || pan.Check(m.PAN) != nil {
		return "14", "declined" // invalid card number
	}
	if m.PINBlock != nil {
		if _, err := pinblock.Translate(wk.pik, m.PINBlock, m.PAN, wk.pik); err != nil {
			return "55", "declined"
		}
	}
	if c, ok := s.cfg.Rules.DeclinePAN[m.PAN]; ok {
		return c, "declined"
	}
	if c, ok := s.cfg.Rules.DeclineAmount[m.Amount]; ok {
		return c, "declined"
	}
	return "00", "approved"
}

// decide applies the rules inside the journal transaction; it updates the
// original row of a void, refund or reversal.
func (s *Sim) decide(ctx context.Context, tx pgx.Tx, m *iso8583.Message, kind string) (code, status, orig string) {
	declined := func(c string) (string, string, string) { return c, "declined", m.RRN }
	switch kind {
	case "void", "refund":
		var amount, refunded int64
		var status string
		err := tx.QueryRow(ctx, `SELECT amount, status FROM acqsim_journal WHERE rrn = $1 AND kind = 'purchase' AND tid = $2 FOR UPDATE`,
			m.RRN, m.TerminalID).Scan(&amount, &status)
		if err != nil {
			return declined("25") // unable to locate original
		}
		if kind == "void" {
			if status != "approved" || m.Amount != amount {
				return declined("12")
			}
			if _, err := tx.Exec(ctx, `UPDATE acqsim_journal SET status = 'voided' WHERE rrn = $1 AND kind = 'purchase'`, m.RRN); err != nil {
				return declined("96")
			}
			return "00", "approved", m.RRN
		}
		_ = tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM acqsim_journal WHERE orig_rrn = $1 AND kind = 'refund' AND status = 'approved'`, m.RRN).Scan(&refunded)
		if (status != "approved" && status != "refunded") || m.Amount <= 0 || refunded+m.Amount > amount {
			return declined("13") // invalid amount
		}
		return "00", "approved", m.RRN
	case "reversal":
		tag, err := tx.Exec(ctx, `UPDATE acqsim_journal SET status = 'reversed'
			WHERE tid = $1 AND stan = $2 AND kind = 'purchase' AND status = 'approved' AND settle_date >= $3::date - 1`,
			m.TerminalID, m.STAN, s.cfg.Now().In(Beijing).Format("2006-01-02"))
		if err != nil {
			return declined("96")
		}
		_ = tag // a reversal of something never approved is acknowledged too
		return "00", "approved", ""
	}
	return declined("12")
}

// SettlementLine is one row of the daily settlement file.
type SettlementLine struct {
	RRN, TID, MID, STAN, Kind, PAN, AuthCode string
	Amount                                   int64 // fen; refunds negative
}

// Settlement lists the day's settled transactions: approved purchases not
// voided or reversed, and approved refunds (negative).
func (s *Sim) Settlement(ctx context.Context, day time.Time) ([]SettlementLine, error) {
	rows, err := s.pool.Query(ctx, `SELECT rrn, tid, mid, stan, kind, pan, auth_code, amount FROM acqsim_journal
		WHERE settle_date = $1 AND ((kind = 'purchase' AND status IN ('approved', 'refunded')) OR (kind = 'refund' AND status = 'approved'))
		ORDER BY id`, day.In(Beijing).Format("2006-01-02"))
	if err != nil {
		return nil, database.QueryError(ctx, "acquirersim: settlement", err)
	}
	lines, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SettlementLine, error) {
		var l SettlementLine
		err := r.Scan(&l.RRN, &l.TID, &l.MID, &l.STAN, &l.Kind, &l.PAN, &l.AuthCode, &l.Amount)
		if l.Kind == "refund" {
			l.Amount = -l.Amount
		}
		return l, err
	})
	if err != nil {
		return nil, database.QueryError(ctx, "acquirersim: settlement", err)
	}
	return lines, nil
}

// WriteSettlement writes the day's settlement file: a header line, one CSV
// line per transaction (rrn,tid,mid,stan,kind,amount,pan,auth_code; PAN
// masked), and a trailer "TOTAL,<count>,<net amount>".
func (s *Sim) WriteSettlement(ctx context.Context, day time.Time, w io.Writer) error {
	lines, err := s.Settlement(ctx, day)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("rrn,tid,mid,stan,kind,amount,pan,auth_code\n")
	var net int64
	for _, l := range lines {
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%d,%s,%s\n", l.RRN, l.TID, l.MID, l.STAN, l.Kind, l.Amount, l.PAN, l.AuthCode)
		net += l.Amount
	}
	fmt.Fprintf(&b, "TOTAL,%d,%d\n", len(lines), net)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "acquirersim: write settlement: %w", err)
	}
	return nil
}

// ParseSettlement reads a settlement file back (for reconciliation).
func ParseSettlement(r io.Reader) ([]SettlementLine, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirersim: read settlement: %w", err)
	}
	text := strings.TrimRight(string(data), "\n")
	all := strings.Split(text, "\n")
	if len(all) < 2 || all[0] != "rrn,tid,mid,stan,kind,amount,pan,auth_code" || !strings.HasPrefix(all[len(all)-1], "TOTAL,") {
		return nil, jifu.Errorf(jifu.CodeInvalid, "acquirersim: not a settlement file")
	}
	var out []SettlementLine
	var net int64
	for i, ln := range all[1 : len(all)-1] {
		f := strings.Split(ln, ",")
		if len(f) != 8 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "acquirersim: settlement line %d has %d fields", i+2, len(f))
		}
		amount, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil || len(f[0]) != 12 || (f[4] != "purchase" && f[4] != "refund") {
			return nil, jifu.Errorf(jifu.CodeInvalid, "acquirersim: settlement line %d is malformed", i+2)
		}
		l := SettlementLine{RRN: f[0], TID: f[1], MID: f[2], STAN: f[3], Kind: f[4], Amount: amount, PAN: f[6], AuthCode: f[7]}
		net += l.Amount
		out = append(out, l)
	}
	if all[len(all)-1] != fmt.Sprintf("TOTAL,%d,%d", len(out), net) {
		return nil, jifu.Errorf(jifu.CodeInvalid, "acquirersim: settlement trailer does not match its lines")
	}
	return out, nil
}
