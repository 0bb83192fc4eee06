package cardpay

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/iso8583"
	"github.com/jifu-open/jifu/host/cardpay/pan"
	"github.com/jifu-open/jifu/host/cardpay/request"
	"github.com/jifu-open/jifu/host/cardpay/track"
	"github.com/jifu-open/jifu/host/database"
)

// Options tune the service.
type Options struct {
	Poster Poster // ledger postings; nil: payments stay posted=false until one is set
	// Notifier receives each payment's result (approved, declined,
	// reversed), recorded with the result and handed over by the relay
	// (RunNotifyRelay); nil: none.
	Notifier Notifier
	Logger   *slog.Logger // never receives card data
	Now      func() time.Time
	// TimestampWindow is how far a request's timestamp may be from now
	// (either way); default 5 minutes.
	TimestampWindow time.Duration
	// BatchNo is field 60.2 (6 digits); default "000001".
	BatchNo string
}

// Service is the card core. Safe for concurrent use.
type Service struct {
	pool  *pgxpool.Pool
	vault *vault
	acq   Acquirer
	opt   Options
	log   *slog.Logger

	mu          sync.RWMutex
	merchants   map[string]*merchant // org\x00merchant
	terminals   map[string]*terminal // ksn prefix
	ipeks       map[string]dukpt.Key // initial keys (TDES IPEK or AES IK) by KSN prefix, derived once from the BDK
	cachedRules *rules
	cards       map[string]cachedCard // by card token, see cardFactsTTL
}

type merchant struct {
	orgID, merchantID, name, acqMID, level, notifyURL string
	paySecret                                         string
}

type terminal struct {
	prefix, orgID, merchantID, typ, bdkID, acqTID, phone string
	scheme                                               string // SchemeTDES or SchemeAES, the BDK's
	active                                               bool
}

// New returns the service over pool (migrated with Migrations), sealing
// secrets with the 32-byte master key and sending purchases to acq.
func New(pool *pgxpool.Pool, masterKey []byte, acq Acquirer, opt Options) (*Service, error) {
	v, err := newVault(masterKey)
	if err != nil {
		return nil, err
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.TimestampWindow <= 0 {
		opt.TimestampWindow = 5 * time.Minute
	}
	if opt.BatchNo == "" {
		opt.BatchNo = "000001"
	}
	return &Service{pool: pool, vault: v, acq: acq, opt: opt, log: opt.Logger,
		merchants: map[string]*merchant{}, terminals: map[string]*terminal{},
		ipeks: map[string]dukpt.Key{}, cards: map[string]cachedCard{}}, nil
}

// String never shows keys.
func (s *Service) String() string { return "cardpay.Service" }

func dbErr(ctx context.Context, what string, err error) error {
	var je *jifu.Error
	if errors.As(err, &je) {
		return err
	}
	return database.QueryError(ctx, "cardpay: "+what, err)
}

// RegisterBDK stores a 16-byte base derivation key (scheme "tdes" or "aes"),
// encrypted under the master key. The id must be new.
func (s *Service) RegisterBDK(ctx context.Context, id, scheme string, bdk dukpt.Key) error {
	if id == "" || len(id) > 64 || (scheme != "tdes" && scheme != "aes") {
		return jifu.Errorf(jifu.CodeInvalid, "cardpay: BDK needs an id of 1..64 bytes and scheme tdes or aes")
	}
	sealed, err := s.vault.seal("bdk:"+id, bdk[:])
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO card_bdks (id, scheme, key_enc) VALUES ($1, $2, $3)`, id, scheme, sealed)
	if isUnique(err) {
		return jifu.Errorf(jifu.CodeConflict, "cardpay: BDK %q already exists", id)
	}
	if err != nil {
		return dbErr(ctx, "register BDK", err)
	}
	return nil
}

// Merchant is a merchant's registration (商户进件).
type Merchant struct {
	OrgID, MerchantID, Name string
	PaySecret               string // the sign key; stored encrypted
	AcquirerMID             string // 15 characters
	UserLevel               string // 101..302; default 101
	FeeRate                 string // decimal, e.g. "0.006"; default 0.006
	NotifyURL               string
}

// RegisterMerchant creates or replaces a merchant.
func (s *Service) RegisterMerchant(ctx context.Context, m Merchant) error {
	if m.OrgID == "" || m.MerchantID == "" || len(m.PaySecret) < 16 || len(m.AcquirerMID) != 15 {
		return jifu.Errorf(jifu.CodeInvalid, "cardpay: merchant needs org_id, merchant_id, a pay_secret of 16+ bytes and a 15-character acquirer MID")
	}
	if m.UserLevel == "" {
		m.UserLevel = "101"
	}
	if m.FeeRate == "" {
		m.FeeRate = "0.006"
	}
	sealed, err := s.vault.seal("pay_secret:"+m.OrgID+"\x00"+m.MerchantID, []byte(m.PaySecret))
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO card_merchants (org_id, merchant_id, name, pay_secret_enc, acq_mid, user_level, fee_rate, notify_url)
		VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8)
		ON CONFLICT (org_id, merchant_id) DO UPDATE SET name = EXCLUDED.name, pay_secret_enc = EXCLUDED.pay_secret_enc,
		acq_mid = EXCLUDED.acq_mid, user_level = EXCLUDED.user_level, fee_rate = EXCLUDED.fee_rate, notify_url = EXCLUDED.notify_url`,
		m.OrgID, m.MerchantID, m.Name, sealed, m.AcquirerMID, m.UserLevel, m.FeeRate, m.NotifyURL)
	if err != nil {
		return dbErr(ctx, "register merchant", err)
	}
	s.mu.Lock()
	delete(s.merchants, m.OrgID+"\x00"+m.MerchantID)
	s.mu.Unlock()
	return nil
}

// Terminal is a reader's registration.
type Terminal struct {
	KSN         string // any KSN of the reader (20 hex digits TDES, 24 AES); its counter is ignored
	OrgID       string
	MerchantID  string
	Type        string // audio, bluetooth, mpos
	BDKID       string
	AcquirerTID string // 8 characters
	Phone       string // for the three-way binding
}

// RegisterTerminal binds a reader to a merchant. The KSN's scheme (its
// length) must be the BDK's.
func (s *Service) RegisterTerminal(ctx context.Context, t Terminal) error {
	prefix, err := s.terminalPrefix(ctx, t)
	if err != nil {
		return err
	}
	if len(t.AcquirerTID) != 8 || (t.Type != TerminalAudio && t.Type != TerminalBluetooth && t.Type != TerminalMPOS) {
		return jifu.Errorf(jifu.CodeInvalid, "cardpay: terminal needs type audio, bluetooth or mpos and an 8-character acquirer TID")
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO card_terminals (ksn_prefix, org_id, merchant_id, terminal_type, bdk_id, acq_tid, phone)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, prefix, t.OrgID, t.MerchantID, t.Type, t.BDKID, t.AcquirerTID, t.Phone)
	var pe *pgconn.PgError
	switch {
	case isUnique(err):
		return jifu.Errorf(jifu.CodeConflict, "cardpay: terminal %s is already registered", prefix)
	case errors.As(err, &pe) && pe.Code == "23503":
		return jifu.Errorf(jifu.CodeNotFound, "cardpay: no such merchant or BDK for terminal %s", prefix)
	case err != nil:
		return dbErr(ctx, "register terminal", err)
	}
	return nil
}

// CardFlags are what binding, verification and agents set on a card.
type CardFlags struct {
	Kind           string // credit, debit or ""
	Bound          bool   // three-way binding card–phone–reader done
	CreditVerified bool
	AgentClass     string // "", 红卡1, 红卡2 (an agent raised a bound card)
}

// SetCardFlags records binding and verification facts about the card with
// this PAN (kept only as token and mask).
func (s *Service) SetCardFlags(ctx context.Context, cardPAN string, f CardFlags) error {
	if err := pan.Check(cardPAN); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO card_cards (card_token, pan_masked, kind, bound, credit_verified, agent_class)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (card_token) DO UPDATE SET kind = EXCLUDED.kind, bound = EXCLUDED.bound,
		credit_verified = EXCLUDED.credit_verified, agent_class = EXCLUDED.agent_class`,
		s.vault.token(cardPAN), pan.Mask(cardPAN), f.Kind, f.Bound, f.CreditVerified, f.AgentClass)
	if err != nil {
		return dbErr(ctx, "set card flags", err)
	}
	s.forgetCard(s.vault.token(cardPAN))
	return nil
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func (s *Service) merchant(ctx context.Context, org, id string) (*merchant, error) {
	key := org + "\x00" + id
	s.mu.RLock()
	m := s.merchants[key]
	s.mu.RUnlock()
	if m != nil {
		return m, nil
	}
	m = &merchant{orgID: org, merchantID: id}
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT name, pay_secret_enc, acq_mid, user_level, notify_url FROM card_merchants
		WHERE org_id = $1 AND merchant_id = $2`, org, id).Scan(&m.name, &sealed, &m.acqMID, &m.level, &m.notifyURL)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbErr(ctx, "load merchant", err)
	}
	secret, err := s.vault.open("pay_secret:"+key, sealed)
	if err != nil {
		return nil, err
	}
	m.paySecret = string(secret)
	s.mu.Lock()
	s.merchants[key] = m
	s.mu.Unlock()
	return m, nil
}

func (s *Service) terminal(ctx context.Context, prefix string) (*terminal, dukpt.Key, error) {
	s.mu.RLock()
	t := s.terminals[prefix]
	ipek := s.ipeks[prefix]
	s.mu.RUnlock()
	if t != nil {
		return t, ipek, nil
	}
	var bdk dukpt.Key
	t = &terminal{prefix: prefix}
	var sealed []byte
	var scheme string
	err := s.pool.QueryRow(ctx, `SELECT t.org_id, t.merchant_id, t.terminal_type, t.bdk_id, t.acq_tid, t.phone, t.active, b.key_enc, b.scheme
		FROM card_terminals t JOIN card_bdks b ON b.id = t.bdk_id WHERE t.ksn_prefix = $1`, prefix).
		Scan(&t.orgID, &t.merchantID, &t.typ, &t.bdkID, &t.acqTID, &t.phone, &t.active, &sealed, &scheme)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ipek, nil
	}
	if err != nil {
		return nil, ipek, dbErr(ctx, "load terminal", err)
	}
	t.scheme = scheme
	raw, err := s.vault.open("bdk:"+t.bdkID, sealed)
	if err != nil {
		return nil, ipek, err
	}
	copy(bdk[:], raw)
	wipe(raw)
	ipek, err = initialKey(scheme, bdk, prefix)
	wipe(bdk[:])
	if err != nil {
		return nil, ipek, err
	}
	s.mu.Lock()
	s.terminals[prefix] = t
	s.ipeks[prefix] = ipek
	s.mu.Unlock()
	return t, ipek, nil
}

// Authorize runs one card payment. Request-level problems (bad sign,
// unknown merchant or terminal, stale timestamp, replayed KSN, an order_id
// already used by another request) are coded errors and change nothing.
// Card checks, risk rules and the acquirer decide declines, which are
// recorded and returned as a Result with the rule named. The same request
// sent again returns the stored result (Replayed). When the acquirer's
// answer is unknown the purchase is reversed and the Result says so, with a
// CodeTimeout or CodeUnavailable error.
func (s *Service) Authorize(ctx context.Context, req *request.Request) (Result, error) {
	m, err := s.merchant(ctx, req.OrgID, req.MerchantID)
	if err != nil {
		return Result{}, err
	}
	if m == nil {
		return Result{}, jifu.Errorf(jifu.CodeDenied, "cardpay: sign does not match") // do not tell which merchants exist
	}
	if err := req.Verify(m.paySecret); err != nil {
		return Result{}, err
	}
	now := s.opt.Now()
	if d := now.Sub(req.Time()); d > s.opt.TimestampWindow || d < -s.opt.TimestampWindow {
		return Result{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: timestamp is outside the %s window", s.opt.TimestampWindow)
	}
	rksn, err := parseRequestKSN(req.KSN) // TDES (20 hex digits) or AES (24)
	if err != nil {
		return Result{}, err
	}
	t, ipek, err := s.terminal(ctx, rksn.prefix())
	if err != nil {
		return Result{}, err
	}
	if t == nil || !t.active || t.orgID != req.OrgID || t.merchantID != req.MerchantID || t.scheme != rksn.scheme {
		return Result{}, jifu.Errorf(jifu.CodeDenied, "cardpay: the reader is not registered to this merchant")
	}

	// The order and the KSN counter are claimed together, or neither: in
	// the risk statement (claimRisk) on the way to the acquirer, or by
	// early for a request declined before it (declines are recorded).
	res := Result{OrderID: req.OrderID, Params: req.Params}
	early := func(rule string, cause error) (Result, error) {
		id, prev, err := s.claim(ctx, req, t, rksn.ksn())
		if err != nil || prev != nil {
			if prev != nil {
				return *prev, nil
			}
			return Result{}, err
		}
		res.PaymentID = id
		if cause != nil {
			return s.fail(ctx, res, rule, cause)
		}
		return s.decline(ctx, m, req.Amount, res, rule, "")
	}

	// Decrypt and check the card.
	keys, err := deriveKeys(ipek, rksn)
	if err != nil {
		return early("request:ksn", err)
	}
	ct, _ := hex.DecodeString(req.EnTracks)
	plain, err := keys.decryptTracks(ct)
	if err != nil {
		return early("card:tracks", nil)
	}
	t2, t3, err := splitTracks(plain, keys.blockSize())
	wipe(plain)
	if err != nil {
		return early("card:tracks", nil)
	}
	defer t2.Wipe()
	if t3 != nil {
		defer t3.Wipe()
	}
	card := t2.Card()
	res.PANMasked = pan.Mask(card.PAN)
	if err := pan.Check(card.PAN); err != nil {
		return early("card:luhn", nil)
	}
	if t3 != nil && t3.PAN != card.PAN {
		return early("card:track3_mismatch", nil)
	}
	if card.Expired(now.In(beijing)) {
		return early("card:expired", nil)
	}
	chip := req.ICData != ""
	if rule := serviceCodeRule(card, chip); rule != "" {
		return early(rule, nil)
	}
	token := s.vault.token(card.PAN)

	// Risk rules: the claim and every counter in one statement; each counter
	// moves within its limit, or none stays moved and the payment is
	// declined naming the rule.
	stan := s.acq.NextSTAN()
	plan, err := s.planRisk(ctx, token, res.PANMasked, chip, m, t, req.Amount, now)
	if err != nil {
		return early("risk", err)
	}
	res.CardClass = plan.out.class
	if plan.out.rule != "" {
		return early(plan.out.rule, nil)
	}
	id, prev, rk, err := s.claimRisk(ctx, req, t, m, rksn.ksn(), plan, stan)
	if err != nil || prev != nil {
		if prev != nil {
			return *prev, nil
		}
		return Result{}, err
	}
	res.PaymentID, res.T0 = id, rk.t0
	if rk.rule != "" {
		return s.decline(ctx, m, req.Amount, res, rk.rule, "")
	}

	// The acquirer.
	msg := &iso8583.Message{
		MTI: iso8583.MTIFinancial, PAN: card.PAN, ProcessingCode: iso8583.ProcPurchase, Amount: req.Amount,
		STAN: stan, Expiry: card.Expiry, EntryMode: "022", Condition: "00",
		Track2: t2.Field35(), TerminalID: t.acqTID, MerchantID: m.acqMID, Currency: iso8583.CurrencyCNY,
		Security: "0600000000000000", Field60: iso8583.TypePurchase + s.opt.BatchNo,
	}
	if t3 != nil {
		msg.Track3 = t3.Field36()
	}
	if chip {
		msg.EntryMode = "052"
		msg.ICData, _ = hex.DecodeString(req.ICData)
	}
	if req.CardPassword != "" {
		blk, _ := hex.DecodeString(req.CardPassword)
		zone, err := s.translatePIN(ctx, keys, blk, card.PAN)
		if err != nil {
			s.release(ctx, rk)
			if jifu.ErrorCode(err) == jifu.CodeInvalid {
				return s.decline(ctx, m, req.Amount, res, "card:pin_block", "")
			}
			return s.fail(ctx, res, "acquirer", err)
		}
		msg.PINBlock, msg.PINCapture, msg.Security = zone, "12", "2600000000000000"
		msg.EntryMode = msg.EntryMode[:2] + "1"
	}
	resp, err := s.acq.Purchase(ctx, msg)
	if err != nil {
		var re *acquirer.ReversalError
		if errors.As(err, &re) {
			res.Status = StatusReversalPending
			if re.Reversed {
				res.Status = StatusReversed
				s.release(ctx, rk)
			}
			res.Rule = "acquirer:unknown_result"
			// reversal_pending is not notified: RetryReversals notifies once reversed.
			var note *string
			if res.Status == StatusReversed {
				note = s.notification(res, m, req.Amount)
			}
			if _, dbe := s.pool.Exec(context.WithoutCancel(ctx), `WITH p AS (
					UPDATE card_payments SET status = $2, rule = $3, updated_at = now() WHERE id = $1 RETURNING id)
				INSERT INTO card_notifications (payment_id, payload) SELECT id, $4 FROM p WHERE $4::text IS NOT NULL`,
				id, res.Status, res.Rule, note); dbe != nil {
				s.log.ErrorContext(ctx, "cardpay: recording a reversal failed", "payment", id, "err", dbe)
			}
			return res, err
		}
		s.release(ctx, rk)
		return s.fail(ctx, res, "acquirer", err)
	}
	res.ResponseCode, res.RRN, res.AuthCode = resp.ResponseCode, resp.RRN, resp.AuthCode
	if resp.ResponseCode != iso8583.ResponseApproved {
		s.release(ctx, rk)
		return s.decline(ctx, m, req.Amount, res, "acquirer:"+resp.ResponseCode, resp.ResponseCode)
	}
	return s.approve(ctx, res, m, token, req.Amount, now)
}

var beijing = time.FixedZone("CST", 8*3600)

// splitTracks reads the en_tracks plaintext: track 2, optionally '|' and
// track 3, then 0x00 padding (less than one cipher block of it).
func splitTracks(plain []byte, block int) (*track.Track2, *track.Track3, error) {
	end := len(plain)
	for end > 0 && plain[end-1] == 0 {
		end--
	}
	if len(plain)-end >= block {
		return nil, nil, jifu.Errorf(jifu.CodeInvalid, "cardpay: tracks padded beyond one block")
	}
	s := string(plain[:end])
	t2s, t3s, has3 := strings.Cut(s, "|")
	t2, err := track.ParseTrack2(t2s)
	if err != nil {
		return nil, nil, err
	}
	if !has3 {
		return t2, nil, nil
	}
	t3, err := track.ParseTrack3(t3s)
	if err != nil {
		t2.Wipe()
		return nil, nil, err
	}
	return t2, t3, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// serviceCodeRule: a chip card (service code 2xx/6xx) read by its stripe
// without chip data is refused (fallback), and so is a card restricted to
// ATMs or not valid for goods (third digit 3 or 5... per ISO/IEC 7813: 3 =
// ATM only); an unknown first digit is refused.
func serviceCodeRule(c track.Card, chip bool) string {
	sc := c.ServiceCode
	switch sc[0] {
	case '1', '5', '7':
	case '2', '6':
		if !chip {
			return "card:service_code_chip_fallback"
		}
	default:
		return "card:service_code"
	}
	if sc[2] == '3' {
		return "card:service_code_atm_only"
	}
	return ""
}

// claim inserts the pending payment and advances the terminal's KSN counter
// in one statement: the counter moves only when the order_id is free, and
// the payment is inserted only when the counter moved. It returns the stored
// result when this exact request was seen before. (Two requests racing with
// one new order_id and different counters can both move the counter while
// only one inserts: the counter only ever moves forward, as the reader's.)
func (s *Service) claim(ctx context.Context, req *request.Request, t *terminal, ksn readerKSN) (int64, *Result, error) {
	var moved int
	var pid *int64
	err := s.pool.QueryRow(ctx, `WITH dup AS (
			SELECT 1 FROM card_payments WHERE org_id = $1 AND merchant_id = $2 AND order_id = $3),
		upd AS (
			UPDATE card_terminals SET last_counter = $11 WHERE ksn_prefix = $10 AND last_counter < $11
			AND NOT EXISTS (SELECT 1 FROM dup) RETURNING 1),
		ins AS (
			INSERT INTO card_payments (org_id, merchant_id, order_id, ksn, translog_no, terminal_type, amount, product_name, params, status)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending' WHERE EXISTS (SELECT 1 FROM upd)
			ON CONFLICT (org_id, merchant_id, order_id) DO NOTHING RETURNING id)
		SELECT (SELECT count(*) FROM upd), (SELECT id FROM ins)`,
		req.OrgID, req.MerchantID, req.OrderID, ksn.String(), req.TranslogNo, t.typ, req.Amount, req.ProductName, req.Params,
		t.prefix, ksn.Counter()).Scan(&moved, &pid)
	if err != nil {
		return 0, nil, dbErr(ctx, "claim payment", err)
	}
	if pid != nil {
		return *pid, nil, nil
	}
	r, err := s.unclaimed(ctx, req)
	return 0, r, err
}

// unclaimed answers a request whose claim inserted nothing: the same
// request again (its stored result), another request with this order_id,
// or a replayed counter.
func (s *Service) unclaimed(ctx context.Context, req *request.Request) (*Result, error) {
	r, same, err := loadResult(ctx, s.pool, req)
	switch {
	case err == nil && same:
		return &r, nil
	case err == nil:
		return nil, jifu.Errorf(jifu.CodeConflict, "cardpay: order_id %q was already used for another payment", req.OrderID)
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, dbErr(ctx, "claim payment", err)
	}
	return nil, jifu.Errorf(jifu.CodeDenied, "cardpay: KSN counter replayed (at or below the last one seen for this reader)")
}

// claimRisk is claim and the risk counters in one statement: the counters
// move (each within its limit, rows locked in the plan's order) only when
// the KSN counter moved, and the payment is inserted with its class, card
// and acquirer fields and whether it is T0. Two requests racing with one
// new order_id and different counters can both move the counters while only
// one inserts: the other gives its counters back before it answers.
func (s *Service) claimRisk(ctx context.Context, req *request.Request, t *terminal, m *merchant, ksn readerKSN, p riskPlan, stan string) (int64, *Result, riskOutcome, error) {
	scopes, subjects, periods, caps := p.arrays()
	rows, err := s.pool.Query(ctx, `WITH dup AS (
			SELECT 1 FROM card_payments WHERE org_id = $1 AND merchant_id = $2 AND order_id = $3),
		upd AS (
			UPDATE card_terminals SET last_counter = $11 WHERE ksn_prefix = $10 AND last_counter < $11
			AND NOT EXISTS (SELECT 1 FROM dup) RETURNING 1),
		moved AS (
			INSERT INTO card_counters (scope, subject, period, amount, cap)
			SELECT s, u, p, $7::bigint, l FROM unnest($12::text[], $13::text[], $14::text[], $15::bigint[]) WITH ORDINALITY AS x(s, u, p, l, n)
			WHERE $7::bigint <= l AND EXISTS (SELECT 1 FROM upd) ORDER BY n
			ON CONFLICT (scope, subject, period) DO UPDATE SET amount = card_counters.amount + EXCLUDED.amount, cap = EXCLUDED.cap
			WHERE card_counters.amount + EXCLUDED.amount <= EXCLUDED.cap
			RETURNING scope, subject, period),
		ins AS (
			INSERT INTO card_payments (org_id, merchant_id, order_id, ksn, translog_no, terminal_type, amount, product_name, params, status,
				card_class, card_token, pan_masked, stan, acq_tid, acq_mid, batch_no, t0)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $16, $17, $18, $19, $20, $21, $22,
				(SELECT count(*) FROM moved WHERE scope IN ('card_t0', 'user_t0')) = 2
			WHERE EXISTS (SELECT 1 FROM upd)
			ON CONFLICT (org_id, merchant_id, order_id) DO NOTHING RETURNING id)
		SELECT (SELECT id FROM ins), m.scope, m.subject, m.period FROM (SELECT 1) AS one LEFT JOIN moved m ON true`,
		req.OrgID, req.MerchantID, req.OrderID, ksn.String(), req.TranslogNo, t.typ, req.Amount, req.ProductName, req.Params,
		t.prefix, ksn.Counter(), scopes, subjects, periods, caps,
		p.out.class, p.token, p.masked, stan, t.acqTID, m.acqMID, s.opt.BatchNo)
	if err != nil {
		return 0, nil, p.out, dbErr(ctx, "claim payment", err)
	}
	var pid *int64
	var sc, su, pe *string
	moved := map[string]bool{}
	var applied []counter
	if _, err := pgx.ForEachRow(rows, []any{&pid, &sc, &su, &pe}, func() error {
		if sc != nil {
			c := counter{scope: *sc, subject: *su, period: *pe}
			moved[c.key()] = true
			applied = append(applied, c)
		}
		return nil
	}); err != nil {
		return 0, nil, p.out, dbErr(ctx, "claim payment", err)
	}
	if pid == nil {
		s.release(ctx, riskOutcome{applied: applied, amount: p.out.amount}) // only after a race
		r, err := s.unclaimed(ctx, req)
		return 0, r, p.out, err
	}
	return *pid, nil, s.settle(ctx, p, moved), nil
}

func loadResult(ctx context.Context, tx *pgxpool.Pool, req *request.Request) (Result, bool, error) {
	var r Result
	var ksn, translog string
	var amount int64
	err := tx.QueryRow(ctx, `SELECT id, order_id, status, rule, response_code, auth_code, rrn, pan_masked, card_class, t0, params, ksn, translog_no, amount
		FROM card_payments WHERE org_id = $1 AND merchant_id = $2 AND order_id = $3`, req.OrgID, req.MerchantID, req.OrderID).
		Scan(&r.PaymentID, &r.OrderID, &r.Status, &r.Rule, &r.ResponseCode, &r.AuthCode, &r.RRN, &r.PANMasked, &r.CardClass, &r.T0, &r.Params, &ksn, &translog, &amount)
	if err != nil {
		return r, false, err
	}
	r.Replayed = true
	return r, ksn == strings.ToUpper(req.KSN) && translog == req.TranslogNo && amount == req.Amount, nil
}

func (s *Service) decline(ctx context.Context, m *merchant, amount int64, res Result, rule, code string) (Result, error) {
	res.Status, res.Rule, res.ResponseCode = StatusDeclined, rule, code
	// The result and its notification in one statement (see relay.go).
	_, err := s.pool.Exec(context.WithoutCancel(ctx), `WITH p AS (
			UPDATE card_payments SET status = 'declined', rule = $2, response_code = $3,
			pan_masked = $4, card_class = $5, rrn = $6, t0 = false, updated_at = now() WHERE id = $1 RETURNING id)
		INSERT INTO card_notifications (payment_id, payload) SELECT id, $7 FROM p WHERE $7::text IS NOT NULL`,
		res.PaymentID, rule, code, res.PANMasked, res.CardClass, res.RRN, s.notification(res, m, amount))
	if err != nil {
		return res, dbErr(ctx, "record decline", err)
	}
	s.log.InfoContext(ctx, "cardpay: declined", "payment", res.PaymentID, "order", res.OrderID, "rule", rule, "pan", res.PANMasked)
	return res, nil
}

func (s *Service) fail(ctx context.Context, res Result, stage string, cause error) (Result, error) {
	res.Status, res.Rule = StatusFailed, stage
	if _, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE card_payments SET status = 'failed', rule = $2, pan_masked = $3, updated_at = now() WHERE id = $1`,
		res.PaymentID, stage, res.PANMasked); err != nil {
		s.log.ErrorContext(ctx, "cardpay: recording a failure failed", "payment", res.PaymentID, "err", err)
	}
	return res, cause
}

func (s *Service) approve(ctx context.Context, res Result, m *merchant, token string, amount int64, now time.Time) (Result, error) {
	res.Status = StatusApproved
	day := now.In(beijing).Format("2006-01-02")
	// The posting first (idempotent on its key), then one statement records
	// the approval, whether it was posted, and the card's cumulative volume.
	posted := s.post(ctx, Posting{Key: fmt.Sprintf("cardpay:payment:%d", res.PaymentID), PaymentID: res.PaymentID, OrgID: m.orgID,
		MerchantID: m.merchantID, OrderID: res.OrderID, Amount: amount, RRN: res.RRN, At: now})
	// One autocommit statement: the approval, the card's volume and the
	// merchant's notification (relay.go) commit together.
	_, err := s.pool.Exec(context.WithoutCancel(ctx), `WITH p AS (
			UPDATE card_payments SET status = 'approved', response_code = $2, auth_code = $3, rrn = $4,
			pan_masked = $5, card_token = $6, card_class = $7, t0 = $8, settle_date = $9, posted = $11, updated_at = now() WHERE id = $1
			RETURNING id, card_token),
		c AS (UPDATE card_cards c SET cumulative = c.cumulative + $10 FROM p WHERE c.card_token = p.card_token)
		INSERT INTO card_notifications (payment_id, payload) SELECT id, $12 FROM p WHERE $12::text IS NOT NULL`,
		res.PaymentID, res.ResponseCode, res.AuthCode, res.RRN, res.PANMasked, token, res.CardClass, res.T0, day, amount, posted,
		s.notification(res, m, amount))
	if err != nil {
		// Approved at the acquirer (and posted) but not recorded: the daily
		// reconciliation lists it (the platform lacks the acquirer's RRN).
		s.log.ErrorContext(ctx, "cardpay: recording an approval failed", "payment", res.PaymentID, "rrn", res.RRN, "err", err)
		return res, dbErr(ctx, "record approval", err)
	}
	return res, nil
}

// post books the payment; false when there is no poster or it failed (the
// payment then waits for RetryPostings).
func (s *Service) post(ctx context.Context, p Posting) bool {
	if s.opt.Poster == nil {
		return false
	}
	if err := s.opt.Poster.PostPayment(ctx, p); err != nil {
		s.log.WarnContext(ctx, "cardpay: posting deferred", "payment", p.PaymentID, "err", err)
		return false
	}
	return true
}

// RetryPostings posts every approved payment, settlement batch and
// approved void or refund not yet posted (for a scheduler; postings are
// idempotent on their keys, so one that did go through replays); it
// returns how many were posted.
func (s *Service) RetryPostings(ctx context.Context) (int, error) {
	n, err := s.retryPaymentPostings(ctx)
	if err != nil {
		return n, err
	}
	m, err := s.retryOtherPostings(ctx)
	return n + m, err
}

func (s *Service) retryPaymentPostings(ctx context.Context) (int, error) {
	if s.opt.Poster == nil {
		return 0, jifu.Errorf(jifu.CodeUnavailable, "cardpay: no poster configured")
	}
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, merchant_id, order_id, amount, rrn, updated_at FROM card_payments
		WHERE status = 'approved' AND NOT posted ORDER BY id LIMIT 1000`)
	if err != nil {
		return 0, dbErr(ctx, "list unposted", err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Posting, error) {
		var p Posting
		err := r.Scan(&p.PaymentID, &p.OrgID, &p.MerchantID, &p.OrderID, &p.Amount, &p.RRN, &p.At)
		p.Key = fmt.Sprintf("cardpay:payment:%d", p.PaymentID)
		return p, err
	})
	if err != nil {
		return 0, dbErr(ctx, "list unposted", err)
	}
	n := 0
	for _, p := range ps {
		if err := s.opt.Poster.PostPayment(ctx, p); err != nil {
			return n, err
		}
		if _, err := s.pool.Exec(ctx, `UPDATE card_payments SET posted = true WHERE id = $1`, p.PaymentID); err != nil {
			return n, dbErr(ctx, "mark posted", err)
		}
		n++
	}
	return n, nil
}
