// Package acquirer is the host's client of an acquirer speaking the
// protocol of host/cardpay/iso8583 over TCP: a pool of connections, one
// message in flight per connection, sign-on for the working keys, timeouts,
// and reversal when a financial request's result is unknown. The address is
// configuration, so another acquirer speaking the same protocol plugs in.
//
// Working keys roll over: when the acquirer answers A0 (MAC error: our keys
// are no longer valid, e.g. another link signed on since) or A7 (not signed
// on), the client signs on again and resends the same message once (same
// STAN, amount and fields, MACed — and its PIN block translated — under the
// new keys). That is safe for a purchase: the acquirer checks the MAC before
// anything else and journals nothing for an A0/A7 answer, so the first
// message was rejected unprocessed; and should it have been processed after
// all, the resend carries the same STAN, which the acquirer answers as a
// retransmission (its journaled answer), never as a second purchase. For the
// same reason no reversal follows an A0/A7: the result is known (refused).
// A second A0/A7 after the new sign-on fails with CodeUnavailable and
// ErrKeysRejected. One sign-on runs at a time; goroutines whose message was
// refused under the same key set wait for it and reuse its keys.
//
//	c, err := acquirer.New(acquirer.Config{Addr: "127.0.0.1:9583", TMK: tmk, TerminalID: "JIFU0001", MerchantID: "898310048990001"})
//	err = c.SignOn(ctx)
//	resp, err := c.Purchase(ctx, msg) // on timeout: reversal sent, CodeTimeout returned
package acquirer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/acquirersim"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/iso8583"
	"github.com/jifu-open/jifu/host/cardpay/pinblock"
)

// Config configures a client.
type Config struct {
	Addr        string        // host:port of the acquirer
	TMK         dukpt.Key     // terminal master key (working keys arrive under it)
	TerminalID  string        // the channel's terminal ID at the acquirer (8), for sign-on
	MerchantID  string        // the channel's merchant ID at the acquirer (15)
	PoolSize    int           // connections; default 8
	DialTimeout time.Duration // default 2 s
	Timeout     time.Duration // per request, default 5 s
	Reversals   int           // reversal attempts on unknown result, default 3
	Logger      *slog.Logger
}

// Client is safe for concurrent use.
type Client struct {
	cfg  Config
	log  *slog.Logger
	idle chan net.Conn
	sem  chan struct{}
	stan atomic.Uint32

	signing chan struct{} // one slot: one sign-on at a time
	signOns atomic.Int64

	mu       sync.RWMutex
	keys     []keySet           // the last sign-ons' keys, newest first; empty: not signed on
	gen      uint64             // generation of the newest key set (0: none yet)
	pins     map[string]pinNote // PIN block translated by TranslatePIN, until its message is answered
	pinOrder []pinRef           // pins' keys, oldest first (bounded)
	pinSeq   uint64
}

// pinNote is the key set a translated PIN block is under.
type pinNote struct{ gen, seq uint64 }

type pinRef struct {
	block string
	seq   uint64
}

// keySet is the working keys of one sign-on.
type keySet struct {
	gen      uint64
	pik, mak dukpt.Key
}

const (
	keepKeySets = 4    // key sets kept to re-translate PIN blocks made under an older one
	keepPINs    = 4096 // translated PIN blocks awaiting their message remembered (their key set), FIFO
)

// ErrKeysRejected marks a message the acquirer refused with A0 (MAC error)
// or A7 (not signed on) even after a new sign-on; the error's code is
// CodeUnavailable. The acquirer did not process the message.
var ErrKeysRejected = errors.New("working keys rejected after a new sign-on")

// New returns a client; connections are dialled on demand.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, jifu.Errorf(jifu.CodeInvalid, "acquirer: address is required")
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = 8
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Reversals <= 0 {
		cfg.Reversals = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: cfg.Logger, idle: make(chan net.Conn, cfg.PoolSize), sem: make(chan struct{}, cfg.PoolSize),
		signing: make(chan struct{}, 1), pins: map[string]pinNote{}}
	c.stan.Store(uint32(time.Now().UnixNano()%900000) + 1)
	return c, nil
}

// String never shows keys.
func (c *Client) String() string { return "acquirer.Client{" + c.cfg.Addr + "}" }

// NextSTAN returns the next system trace audit number (000001..999999).
func (c *Client) NextSTAN() string {
	for {
		n := c.stan.Add(1) % 1000000
		if n != 0 {
			return fmt.Sprintf("%06d", n)
		}
	}
}

// Close closes idle connections.
func (c *Client) Close() {
	for {
		select {
		case conn := <-c.idle:
			conn.Close()
		default:
			return
		}
	}
}

// errUnknown marks a request whose answer never came: the acquirer may or
// may not have acted on it.
var errUnknown = errors.New("result unknown")

// roundTrip sends one packed message and reads the answer on a pooled
// connection. A connection that failed mid-exchange is discarded.
func (c *Client) roundTrip(ctx context.Context, b []byte) ([]byte, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, jifu.Errorf(jifu.CodeTimeout, "acquirer: no free connection: %w", ctx.Err())
	}
	defer func() { <-c.sem }()
	var conn net.Conn
	select {
	case conn = <-c.idle:
	default:
		d := net.Dialer{Timeout: c.cfg.DialTimeout}
		var err error
		if conn, err = d.DialContext(ctx, "tcp", c.cfg.Addr); err != nil {
			return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirer: dial %s: %w", c.cfg.Addr, err)
		}
	}
	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	if err := iso8583.WriteFrame(conn, b); err != nil {
		conn.Close()
		// Nothing was read: the acquirer may still have received it.
		return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirer: send: %w", errUnknown)
	}
	resp, err := iso8583.ReadFrame(conn)
	if err != nil {
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, jifu.Errorf(jifu.CodeTimeout, "acquirer: no answer within the timeout: %w", errUnknown)
		}
		return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirer: connection lost before the answer: %w", errUnknown)
	}
	_ = conn.SetDeadline(time.Time{})
	select {
	case c.idle <- conn:
	default:
		conn.Close()
	}
	return resp, nil
}

// SignOn exchanges 0800/0810 and installs the PIN and MAC working keys
// (decrypted with the TMK, check values verified). It waits for a sign-on
// already running.
func (c *Client) SignOn(ctx context.Context) error {
	if err := c.lockSigning(ctx); err != nil {
		return err
	}
	defer c.unlockSigning()
	return c.signOn(ctx)
}

// SignOns reports how many sign-ons this client completed.
func (c *Client) SignOns() int64 { return c.signOns.Load() }

func (c *Client) lockSigning(ctx context.Context) error {
	select {
	case c.signing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return jifu.Errorf(jifu.CodeTimeout, "acquirer: waiting for a sign-on: %w", ctx.Err())
	}
}

func (c *Client) unlockSigning() { <-c.signing }

// signOn runs one sign-on; the caller holds the signing slot.
func (c *Client) signOn(ctx context.Context) error {
	req := &iso8583.Message{MTI: iso8583.MTISignOn, STAN: c.NextSTAN(), TerminalID: c.cfg.TerminalID,
		MerchantID: c.cfg.MerchantID, Field60: "00000001003"}
	b, err := iso8583.Pack(req, nil)
	if err != nil {
		return err
	}
	rb, err := c.roundTrip(ctx, b)
	if err != nil {
		// Not errUnknown: the financial message waiting for these keys
		// was not sent (or was refused unprocessed), so nothing to reverse.
		return jifu.Errorf(jifu.ErrorCode(err), "acquirer: sign-on: %s", jifu.ErrorMessage(err))
	}
	resp, err := iso8583.Unpack(rb)
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "acquirer: malformed sign-on answer: %v", err)
	}
	if resp.MTI != iso8583.MTISignOnResp || resp.ResponseCode != "00" || len(resp.Keys) != 40 {
		return jifu.Errorf(jifu.CodeUnavailable, "acquirer: sign-on refused (response %q)", resp.ResponseCode)
	}
	tmk := dukpt.TDES(c.cfg.TMK)
	var keys [2]dukpt.Key
	for i := range keys {
		enc := resp.Keys[i*20 : i*20+16]
		tmk.Decrypt(keys[i][:8], enc[:8])
		tmk.Decrypt(keys[i][8:], enc[8:])
		if !bytes.Equal(acquirersim.CheckValue(keys[i]), resp.Keys[i*20+16:i*20+20]) {
			return jifu.Errorf(jifu.CodeUnavailable, "acquirer: sign-on key %d fails its check value (wrong TMK?)", i+1)
		}
	}
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.keys = append([]keySet{{gen: gen, pik: keys[0], mak: keys[1]}}, c.keys[:min(len(c.keys), keepKeySets-1)]...)
	c.mu.Unlock()
	c.signOns.Add(1)
	c.log.InfoContext(ctx, "acquirer: signed on", "addr", c.cfg.Addr, "generation", gen)
	return nil
}

// current returns the newest key set; false when not signed on.
func (c *Client) current() (keySet, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.keys) == 0 {
		return keySet{}, false
	}
	return c.keys[0], true
}

// keySet returns the kept key set of generation gen.
func (c *Client) keySet(gen uint64) (keySet, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, k := range c.keys {
		if k.gen == gen {
			return k, true
		}
	}
	return keySet{}, false
}

// renew signs on again unless the key set of generation stale (0: none)
// was replaced meanwhile: then the waiter reuses the newer keys. So a burst
// of messages refused under the same keys makes one sign-on, not one each.
func (c *Client) renew(ctx context.Context, stale uint64) (keySet, error) {
	if err := c.lockSigning(ctx); err != nil {
		return keySet{}, err
	}
	defer c.unlockSigning()
	if ks, ok := c.current(); ok && ks.gen != stale {
		return ks, nil
	}
	if err := c.signOn(ctx); err != nil {
		return keySet{}, err
	}
	ks, _ := c.current()
	return ks, nil
}

// keysNow returns the newest keys, signing on first if there are none.
func (c *Client) keysNow(ctx context.Context) (keySet, error) {
	if ks, ok := c.current(); ok {
		return ks, nil
	}
	return c.renew(ctx, 0)
}

// TranslatePIN turns a reader's PIN block (under its DUKPT PIN key) into a
// format 0 block under the acquirer's PIN working key.
func (c *Client) TranslatePIN(ctx context.Context, readerKey dukpt.Key, block []byte, pan string) ([]byte, error) {
	ks, err := c.keysNow(ctx)
	if err != nil {
		return nil, err
	}
	out, err := pinblock.Translate(readerKey, block, pan, ks.pik)
	if err == nil {
		c.rememberPIN(out, ks.gen)
	}
	return out, err
}

// rememberPIN notes the key set a translated PIN block (encrypted, never
// clear) is under, so that a message sent under newer keys carries it
// re-translated. The note goes when the message is answered (forgetPIN),
// or, for a block never sent, once keepPINs newer ones were noted.
func (c *Client) rememberPIN(block []byte, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinSeq++
	k := string(block)
	c.pins[k] = pinNote{gen: gen, seq: c.pinSeq}
	c.pinOrder = append(c.pinOrder, pinRef{block: k, seq: c.pinSeq})
	for len(c.pinOrder) > keepPINs || (len(c.pinOrder) > 0 && c.pins[c.pinOrder[0].block].seq != c.pinOrder[0].seq) {
		if old := c.pinOrder[0]; c.pins[old.block].seq == old.seq {
			delete(c.pins, old.block)
		}
		c.pinOrder = c.pinOrder[1:]
	}
}

// forgetPIN drops the note of a block whose message was answered.
func (c *Client) forgetPIN(block []byte) {
	if len(block) == 0 {
		return
	}
	c.mu.Lock()
	delete(c.pins, string(block))
	c.mu.Unlock()
}

// pinFor returns m's PIN block under ks's PIN key: re-translated from the
// older key set TranslatePIN used, when it knows it; else as it is (a
// block it did not translate is the caller's to get right).
func (c *Client) pinFor(m *iso8583.Message, ks keySet) ([]byte, error) {
	if len(m.PINBlock) == 0 {
		return m.PINBlock, nil
	}
	c.mu.RLock()
	note, ok := c.pins[string(m.PINBlock)]
	c.mu.RUnlock()
	if !ok || note.gen == ks.gen {
		return m.PINBlock, nil
	}
	old, ok := c.keySet(note.gen)
	if !ok {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirer: the PIN block's working key rolled over; enter the PIN again")
	}
	return pinblock.Translate(old.pik, m.PINBlock, m.PAN, ks.pik)
}

// exchange MACs and sends a financial message and checks the answer
// (matching MTI, STAN and terminal, valid MAC). An A0 (MAC error) or A7
// (not signed on) answer: sign on again (or reuse the keys of a sign-on
// that replaced the refused ones meanwhile) and resend the same message
// once; refused again, ErrKeysRejected. See the package doc for why the
// resend is safe and needs no reversal.
func (c *Client) exchange(ctx context.Context, m *iso8583.Message) (*iso8583.Message, error) {
	ks, err := c.keysNow(ctx)
	if err != nil {
		return nil, err
	}
	resp, refused, err := c.send(ctx, m, ks)
	if refused == "" {
		c.forgetPIN(m.PINBlock)
		return resp, err
	}
	defer c.forgetPIN(m.PINBlock)
	c.log.InfoContext(ctx, "acquirer: working keys refused, signing on again", "response", refused, "stan", m.STAN,
		"tid", m.TerminalID, "generation", ks.gen)
	if ks, err = c.renew(ctx, ks.gen); err != nil {
		return nil, err
	}
	resp, refused, err = c.send(ctx, m, ks)
	if refused != "" {
		c.log.WarnContext(ctx, "acquirer: working keys refused again after a new sign-on", "response", refused,
			"stan", m.STAN, "tid", m.TerminalID)
		return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirer: answer %s to STAN %s: %w", refused, m.STAN, ErrKeysRejected)
	}
	return resp, err
}

// send sends m once under ks. refused is "A0" or "A7" when the acquirer
// refused the keys (then resp and err are nil).
func (c *Client) send(ctx context.Context, m *iso8583.Message, ks keySet) (resp *iso8583.Message, refused string, err error) {
	out := *m
	out.MAC = []byte{}
	if out.PINBlock, err = c.pinFor(m, ks); err != nil {
		return nil, "", err
	}
	b, err := iso8583.Pack(&out, ks.mak[:])
	if err != nil {
		return nil, "", err
	}
	rb, err := c.roundTrip(ctx, b)
	if err != nil {
		return nil, "", err
	}
	resp, err = iso8583.Unpack(rb)
	if err != nil {
		return nil, "", jifu.Errorf(jifu.CodeUnavailable, "acquirer: malformed answer: %w", errUnknown)
	}
	// A0/A7 are answered under keys we may not have (or none): they are not
	// MAC-checked. A forged one costs a sign-on and a resend of the same
	// STAN, which the acquirer answers as a retransmission.
	if resp.ResponseCode == "A0" || resp.ResponseCode == "A7" {
		return nil, resp.ResponseCode, nil
	}
	if err := iso8583.VerifyMAC(rb, ks.mak[:]); err != nil {
		return nil, "", jifu.Errorf(jifu.CodeUnavailable, "acquirer: answer fails its MAC: %w", errUnknown)
	}
	if resp.MTI != m.MTI[:2]+string(m.MTI[2]+1)+m.MTI[3:] || resp.STAN != m.STAN || resp.TerminalID != m.TerminalID {
		return nil, "", jifu.Errorf(jifu.CodeUnavailable, "acquirer: answer does not match the request: %w", errUnknown)
	}
	return resp, "", nil
}

// Unknown reports whether err means the acquirer may have acted on the
// request without our knowing the result (timeout, lost connection).
func Unknown(err error) bool { return errors.Is(err, errUnknown) }

// ReversalError is returned by Purchase when the result was unknown: Reversed
// tells whether the acquirer acknowledged the reversal.
type ReversalError struct {
	Err      error
	Reversed bool
}

func (e *ReversalError) Error() string {
	if e.Reversed {
		return e.Err.Error() + " (reversed)"
	}
	return e.Err.Error() + " (reversal not acknowledged)"
}

func (e *ReversalError) Unwrap() error { return e.Err }

// Purchase sends a 0200 purchase. When the result is unknown it sends the
// 0400 reversal (up to Config.Reversals attempts, each with the timeout) and
// returns a *ReversalError wrapping the coded error.
func (c *Client) Purchase(ctx context.Context, m *iso8583.Message) (*iso8583.Message, error) {
	resp, err := c.exchange(ctx, m)
	if err == nil || !Unknown(err) {
		return resp, err
	}
	c.log.WarnContext(ctx, "acquirer: purchase result unknown, reversing", "stan", m.STAN, "tid", m.TerminalID, "err", err)
	return nil, &ReversalError{Err: err, Reversed: c.Reverse(context.WithoutCancel(ctx), m) == nil}
}

// Reverse sends the 0400 reversal of the financial message orig, retrying.
func (c *Client) Reverse(ctx context.Context, orig *iso8583.Message) error {
	rev := &iso8583.Message{MTI: iso8583.MTIReversal, PAN: orig.PAN, ProcessingCode: orig.ProcessingCode,
		Amount: orig.Amount, STAN: orig.STAN, Expiry: orig.Expiry, EntryMode: orig.EntryMode, Condition: orig.Condition,
		TerminalID: orig.TerminalID, MerchantID: orig.MerchantID, Currency: orig.Currency, Field60: orig.Field60, ResponseCode: "98"}
	var err error
	for i := 0; i < c.cfg.Reversals; i++ {
		var resp *iso8583.Message
		if resp, err = c.exchange(ctx, rev); err == nil {
			if resp.ResponseCode == "00" || resp.ResponseCode == "25" {
				return nil
			}
			err = jifu.Errorf(jifu.CodeUnavailable, "acquirer: reversal refused (%s)", resp.ResponseCode)
		}
	}
	return err
}

// Void sends a 0200 void of the purchase with RRN m.RRN.
func (c *Client) Void(ctx context.Context, m *iso8583.Message) (*iso8583.Message, error) {
	return c.exchange(ctx, m)
}

// Refund sends a 0220 refund of the purchase with RRN m.RRN.
func (c *Client) Refund(ctx context.Context, m *iso8583.Message) (*iso8583.Message, error) {
	return c.exchange(ctx, m)
}
