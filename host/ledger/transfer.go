package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Transfer is a request to move Amount fen from the Debit account to the
// Credit account, at once or, when Pending, as a hold that Timeout later
// expires unless posted or voided first.
type Transfer struct {
	// ID is the idempotency key, unique per caller: the same key with the
	// same content returns the original result; with other content the
	// request fails with ErrIdempotencyConflict.
	ID       string
	Debit    int64             // account id
	Credit   int64             // account id
	Amount   int64             // fen, > 0
	Code     string            // why: "topup", "payment", "refund", "invest", ... ([a-z0-9_.-], 1..64 bytes)
	Metadata map[string]string // kept with the transfer; at most MaxMetadata entries
	Pending  bool              // a hold: PostPending or VoidPending it before Timeout
	Timeout  time.Duration     // for a hold, > 0 (microsecond precision); otherwise 0
}

// Kind is what a stored transfer did.
type Kind string

// Transfer kinds.
const (
	KindPosted  Kind = "posted"  // moved money at once
	KindPending Kind = "pending" // a hold
	KindPost    Kind = "post"    // posted a hold (Amount: what was posted; the rest returned)
	KindVoid    Kind = "void"    // voided a hold (Amount: what was released)
	KindExpire  Kind = "expire"  // the expiry sweep voided a hold
)

// Result is a transfer as booked.
type Result struct {
	ID        int64 // the ledger's id: a hold's id is the pendingID of PostPending and VoidPending
	Key       string
	Kind      Kind
	Debit     int64
	Credit    int64
	Amount    int64
	Code      string
	Metadata  map[string]string
	PendingID int64     // for a post or void: the hold it resolved
	TimeoutAt time.Time // for a hold: when it expires
	CreatedAt time.Time
	Replayed  bool // this request was answered from the stored result of an earlier identical one
}

// Limits on requests.
const (
	MaxKeyBytes      = 128
	MaxCallerBytes   = 64
	MaxCodeBytes     = 64
	MaxMetadata      = 32
	MaxMetaKeyBytes  = 64
	MaxMetaValBytes  = 1024
	MaxBatch         = 10000
	MaxHoldTimeout   = 400 * 24 * time.Hour
	expireBatchLimit = 1000
)

func validText(s string, max int) bool {
	return s != "" && len(s) <= max && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func validCaller(caller string) error {
	if !validText(caller, MaxCallerBytes) {
		return fail(ErrInvalid, "caller must be 1..%d bytes of UTF-8", MaxCallerBytes)
	}
	if caller == SystemCaller {
		return fail(ErrInvalid, "caller %q is reserved", SystemCaller)
	}
	return nil
}

func validKey(key string) error {
	if !validText(key, MaxKeyBytes) {
		return fail(ErrInvalid, "transfer id (idempotency key) must be 1..%d bytes of UTF-8", MaxKeyBytes)
	}
	return nil
}

func validCode(code string) bool {
	if code == "" || len(code) > MaxCodeBytes {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Validate reports the first problem of t as an ErrInvalid error.
func (t *Transfer) Validate() error {
	if err := validKey(t.ID); err != nil {
		return err
	}
	if t.Debit <= 0 || t.Credit <= 0 {
		return fail(ErrInvalid, "transfer %q: debit and credit account ids must be positive", t.ID)
	}
	if t.Debit == t.Credit {
		return fail(ErrInvalid, "transfer %q: debit and credit are the same account", t.ID)
	}
	if t.Amount <= 0 {
		return fail(ErrInvalid, "transfer %q: amount %d is not positive", t.ID, t.Amount)
	}
	if !validCode(t.Code) {
		return fail(ErrInvalid, "transfer %q: code must be 1..%d bytes of [a-z0-9_.-]", t.ID, MaxCodeBytes)
	}
	if len(t.Metadata) > MaxMetadata {
		return fail(ErrInvalid, "transfer %q: %d metadata entries, over %d", t.ID, len(t.Metadata), MaxMetadata)
	}
	for k, v := range t.Metadata {
		if !validText(k, MaxMetaKeyBytes) || len(v) > MaxMetaValBytes || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return fail(ErrInvalid, "transfer %q: metadata keys must be 1..%d bytes, values at most %d, UTF-8 without NUL",
				t.ID, MaxMetaKeyBytes, MaxMetaValBytes)
		}
	}
	switch {
	case t.Pending && (t.Timeout < time.Microsecond || t.Timeout > MaxHoldTimeout):
		return fail(ErrInvalid, "transfer %q: a hold's timeout must be within 1µs..%s", t.ID, MaxHoldTimeout)
	case !t.Pending && t.Timeout != 0:
		return fail(ErrInvalid, "transfer %q: timeout is only for holds", t.ID)
	}
	return nil
}

// timeoutMicros is the hold timeout the database stores (0: not a hold),
// rounded up to a microsecond.
func (t *Transfer) timeoutMicros() int64 {
	if !t.Pending {
		return 0
	}
	return int64((t.Timeout + time.Microsecond - 1) / time.Microsecond)
}

// canonical writes t's content in one unambiguous encoding: the digest's
// input. Map order is fixed by sorting the keys.
func (t *Transfer) canonical(h hash.Hash) {
	putString(h, t.ID)
	putInt(h, t.Debit)
	putInt(h, t.Credit)
	putInt(h, t.Amount)
	putString(h, t.Code)
	if t.Pending {
		putInt(h, t.timeoutMicros())
	} else {
		putInt(h, -1)
	}
	keys := make([]string, 0, len(t.Metadata))
	for k := range t.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	putInt(h, int64(len(keys)))
	for _, k := range keys {
		putString(h, k)
		putString(h, t.Metadata[k])
	}
}

func putInt(h hash.Hash, v int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	h.Write(b[:])
}

func putString(h hash.Hash, s string) {
	putInt(h, int64(len(s)))
	h.Write([]byte(s))
}

// digests returns the idempotency digest of each transfer of a request. A
// single transfer's digest covers it alone; in a batch of n > 1 each
// transfer's digest covers the whole batch and its position, so that only
// the identical batch replays.
func digests(ts []Transfer) [][]byte {
	if len(ts) == 1 {
		h := sha256.New()
		h.Write([]byte("jifu.ledger.transfer.v1"))
		ts[0].canonical(h)
		return [][]byte{h.Sum(nil)}
	}
	h := sha256.New()
	h.Write([]byte("jifu.ledger.batch.v1"))
	putInt(h, int64(len(ts)))
	for i := range ts {
		ts[i].canonical(h)
	}
	batch := h.Sum(nil)
	out := make([][]byte, len(ts))
	for i := range ts {
		h := sha256.New()
		h.Write(batch)
		putInt(h, int64(i))
		out[i] = h.Sum(nil)
	}
	return out
}

func resolveDigest(key string, pendingID, amount int64, void bool) []byte {
	h := sha256.New()
	h.Write([]byte("jifu.ledger.resolve.v1"))
	putString(h, key)
	putInt(h, pendingID)
	putInt(h, amount)
	if void {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// Transfer books t for caller (the domain or app making the request, the
// scope of its idempotency keys). Refusals: ErrInvalid, ErrNotFound,
// ErrCurrencyMismatch, ErrAccountClosed, ErrInsufficientFunds,
// ErrExceedsCredits, ErrIdempotencyConflict; each leaves nothing behind.
func (l *Ledger) Transfer(ctx context.Context, caller string, t Transfer) (Result, error) {
	rs, err := l.submit(ctx, caller, []Transfer{t}, "transfer")
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// Submit books the transfers ts for caller atomically: all of them or none.
// Balance flags are checked on the batch's net effect, so a batch may pass
// money through an account that starts empty. A replay of the identical
// batch returns the original results; any other reuse of its keys fails with
// ErrIdempotencyConflict. Keys must be distinct within the batch; at most
// MaxBatch transfers.
func (l *Ledger) Submit(ctx context.Context, caller string, ts []Transfer) ([]Result, error) {
	return l.submit(ctx, caller, ts, "submit")
}

func (l *Ledger) submit(ctx context.Context, caller string, ts []Transfer, what string) ([]Result, error) {
	if err := validCaller(caller); err != nil {
		return nil, err
	}
	n := len(ts)
	if n == 0 || n > MaxBatch {
		return nil, fail(ErrInvalid, "a batch holds 1..%d transfers, not %d", MaxBatch, n)
	}
	var (
		keys     = make([]string, n)
		debits   = make([]int64, n)
		credits  = make([]int64, n)
		amounts  = make([]int64, n)
		codes    = make([]string, n)
		metas    = make([]*string, n)
		timeouts = make([]int64, n)
		seen     = make(map[string]struct{}, n)
	)
	for i := range ts {
		t := &ts[i]
		if err := t.Validate(); err != nil {
			return nil, err
		}
		if _, dup := seen[t.ID]; dup {
			return nil, fail(ErrInvalid, "transfer id %q appears twice in the batch", t.ID)
		}
		seen[t.ID] = struct{}{}
		keys[i], debits[i], credits[i], amounts[i], codes[i] = t.ID, t.Debit, t.Credit, t.Amount, t.Code
		timeouts[i] = t.timeoutMicros()
		if len(t.Metadata) > 0 {
			b, err := json.Marshal(t.Metadata)
			if err != nil {
				return nil, fail(ErrInvalid, "transfer %q: metadata: %v", t.ID, err)
			}
			s := string(b)
			metas[i] = &s
		}
	}
	sums := digests(ts)
	now := l.now().UTC().Truncate(time.Microsecond)

	var out []Result
	err := l.retry(ctx, what, func() error {
		var (
			code     string
			index    int32
			detail   *int64
			ids      []int64
			created  *time.Time
			replayed bool
			err      error
		)
		if n == 1 {
			var id *int64
			err = l.db.QueryRow(ctx, `
				SELECT o_code, o_detail, o_id, o_created, o_replayed
				FROM ledger_transfer($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10)`,
				caller, now, keys[0], sums[0], debits[0], credits[0], amounts[0], codes[0], metas[0], timeouts[0]).
				Scan(&code, &detail, &id, &created, &replayed)
			if id != nil {
				ids = []int64{*id}
			}
		} else {
			err = l.db.QueryRow(ctx, `
				SELECT o_code, o_index, o_detail, o_ids, o_created, o_replayed
				FROM ledger_submit($1, $2, $3, $4, $5, $6, $7, $8, $9::text[]::jsonb[], $10)`,
				caller, now, keys, sums, debits, credits, amounts, codes, metas, timeouts).
				Scan(&code, &index, &detail, &ids, &created, &replayed)
		}
		if err != nil {
			return dbError(ctx, what, err)
		}
		switch code {
		case "":
		case "retry":
			return errRetryInternal
		default:
			return refusal(code, ts, int(index), detail)
		}
		out = make([]Result, n)
		for i := range ts {
			t := &ts[i]
			r := Result{ID: ids[i], Key: t.ID, Kind: KindPosted, Debit: t.Debit, Credit: t.Credit, Amount: t.Amount,
				Code: t.Code, Metadata: t.Metadata, CreatedAt: *created, Replayed: replayed}
			if t.Pending {
				r.Kind = KindPending
				r.TimeoutAt = r.CreatedAt.Add(time.Duration(timeouts[i]) * time.Microsecond)
			}
			out[i] = r
		}
		return nil
	})
	return out, err
}

// refusal turns ledger_submit's code into an error naming the transfer and
// the account concerned.
func refusal(code string, ts []Transfer, index int, detail *int64) error {
	var where string
	if index >= 0 && index < len(ts) {
		where = "transfer " + strconv.Quote(ts[index].ID)
	} else {
		where = "batch (net effect)"
	}
	if detail != nil {
		where += ": account " + strconv.FormatInt(*detail, 10)
	}
	r := Reason(code)
	if r.code() == "" {
		return fail(r, "%s: unexpected result", where)
	}
	return fail(r, "%s", where)
}

// PostPending posts the hold pendingID: amount fen of it (0: all of it; at
// most the held amount) move to the credit account and the rest returns to
// the debit account. key is this request's idempotency key. Refusals:
// ErrNotFound, ErrHoldResolved (already posted, voided or expired),
// ErrHoldExpired (at or after its timeout, even before the sweep voids it),
// ErrExceedsHold, ErrAccountClosed, ErrIdempotencyConflict.
func (l *Ledger) PostPending(ctx context.Context, caller, key string, pendingID, amount int64) (Result, error) {
	if amount < 0 {
		return Result{}, fail(ErrInvalid, "post of hold %d: amount %d is negative", pendingID, amount)
	}
	return l.resolve(ctx, caller, key, pendingID, amount, false)
}

// VoidPending voids the hold pendingID: the whole held amount returns.
// Refusals: ErrNotFound, ErrHoldResolved, ErrIdempotencyConflict. A hold past
// its timeout that the sweep has not reached yet can still be voided.
func (l *Ledger) VoidPending(ctx context.Context, caller, key string, pendingID int64) (Result, error) {
	return l.resolve(ctx, caller, key, pendingID, 0, true)
}

func (l *Ledger) resolve(ctx context.Context, caller, key string, pendingID, amount int64, void bool) (Result, error) {
	if err := validCaller(caller); err != nil {
		return Result{}, err
	}
	if err := validKey(key); err != nil {
		return Result{}, err
	}
	if pendingID <= 0 {
		return Result{}, fail(ErrNotFound, "no hold %d", pendingID)
	}
	what := "post"
	kind := KindPost
	if void {
		what, kind = "void", KindVoid
	}
	sum := resolveDigest(key, pendingID, amount, void)
	now := l.now().UTC().Truncate(time.Microsecond)
	var r Result
	err := l.retry(ctx, what, func() error {
		var (
			code                  string
			id, amt, debit, credt *int64
			created               *time.Time
			replayed              bool
			xcode                 *string
		)
		err := l.db.QueryRow(ctx, `
			SELECT o_code, o_id, o_amount, o_created, o_replayed, o_debit, o_credit, o_xfer_code
			FROM ledger_resolve($1, $2, $3, $4, $5, $6, $7)`,
			caller, key, sum, pendingID, amount, void, now).
			Scan(&code, &id, &amt, &created, &replayed, &debit, &credt, &xcode)
		if err != nil {
			return dbError(ctx, what, err)
		}
		switch code {
		case "":
		case "retry":
			return errRetryInternal
		case "not_found":
			return fail(ErrNotFound, "%s of hold %d: no such hold", what, pendingID)
		default:
			return fail(Reason(code), "%s %q of hold %d", what, key, pendingID)
		}
		r = Result{ID: *id, Key: key, Kind: kind, Debit: *debit, Credit: *credt, Amount: *amt, Code: *xcode,
			PendingID: pendingID, CreatedAt: *created, Replayed: replayed}
		return nil
	})
	return r, err
}

// ExpireHolds voids every hold whose timeout is at or before now, a
// thousand per statement, and returns how many it voided. Each void is a
// transfer of kind KindExpire by SystemCaller. jifu serve runs it every
// second.
func (l *Ledger) ExpireHolds(ctx context.Context, now time.Time) (int, error) {
	now = now.UTC().Truncate(time.Microsecond)
	total := 0
	for {
		var n int
		err := l.retry(ctx, "expire holds", func() error {
			err := l.db.QueryRow(ctx, `SELECT ledger_expire($1, $2)`, now, expireBatchLimit).Scan(&n)
			return dbError(ctx, "expire holds", err)
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < expireBatchLimit {
			return total, nil
		}
	}
}

// Lookup returns the transfer caller booked under key (a transfer, a hold,
// a post or a void), as Transfer or PostPending returned it; ErrNotFound
// when there is none. A caller unsure whether a request went through before
// a crash can look it up, or simply send it again.
func (l *Ledger) Lookup(ctx context.Context, caller, key string) (Result, error) {
	var (
		r       Result
		kind    string
		meta    map[string]string
		pending *int64
		timeout *time.Time
	)
	err := l.db.QueryRow(ctx, `
		SELECT id, kind, debit_id, credit_id, amount, code, metadata, pending_id, timeout_at, created_at
		FROM ledger_transfers WHERE caller = $1 AND key = $2`, caller, key).
		Scan(&r.ID, &kind, &r.Debit, &r.Credit, &r.Amount, &r.Code, &meta, &pending, &timeout, &r.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Result{}, fail(ErrNotFound, "no transfer %q of caller %q", key, caller)
	}
	if err != nil {
		return Result{}, dbError(ctx, "lookup", err)
	}
	r.Key, r.Kind, r.Metadata = key, Kind(kind), meta
	if pending != nil {
		r.PendingID = *pending
	}
	if timeout != nil {
		r.TimeoutAt = *timeout
	}
	return r, nil
}
