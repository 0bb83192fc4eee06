// Package acquirer is the host's client of an acquirer speaking the
// protocol of host/cardpay/iso8583 over TCP: a pool of connections, one
// message in flight per connection, sign-on for the working keys, timeouts,
// and reversal when a financial request's result is unknown. The address is
// configuration, so another acquirer speaking the same protocol plugs in.
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

	mu   sync.RWMutex
	pik  dukpt.Key
	mak  dukpt.Key
	ok   bool
	once sync.Mutex
}

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
	c := &Client{cfg: cfg, log: cfg.Logger, idle: make(chan net.Conn, cfg.PoolSize), sem: make(chan struct{}, cfg.PoolSize)}
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
// (decrypted with the TMK, check values verified).
func (c *Client) SignOn(ctx context.Context) error {
	req := &iso8583.Message{MTI: iso8583.MTISignOn, STAN: c.NextSTAN(), TerminalID: c.cfg.TerminalID,
		MerchantID: c.cfg.MerchantID, Field60: "00000001003"}
	b, err := iso8583.Pack(req, nil)
	if err != nil {
		return err
	}
	rb, err := c.roundTrip(ctx, b)
	if err != nil {
		return err
	}
	resp, err := iso8583.Unpack(rb)
	if err != nil {
		return err
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
	c.pik, c.mak, c.ok = keys[0], keys[1], true
	c.mu.Unlock()
	return nil
}

func (c *Client) ensureSignedOn(ctx context.Context) error {
	c.mu.RLock()
	ok := c.ok
	c.mu.RUnlock()
	if ok {
		return nil
	}
	c.once.Lock()
	defer c.once.Unlock()
	c.mu.RLock()
	ok = c.ok
	c.mu.RUnlock()
	if ok {
		return nil
	}
	return c.SignOn(ctx)
}

// TranslatePIN turns a reader's PIN block (under its DUKPT PIN key) into a
// format 0 block under the acquirer's PIN working key.
func (c *Client) TranslatePIN(ctx context.Context, readerKey dukpt.Key, block []byte, pan string) ([]byte, error) {
	if err := c.ensureSignedOn(ctx); err != nil {
		return nil, err
	}
	c.mu.RLock()
	pik := c.pik
	c.mu.RUnlock()
	return pinblock.Translate(readerKey, block, pan, pik)
}

// Exchange MACs and sends a financial message and checks the answer
// (matching MTI, STAN and terminal, valid MAC). A "A0" (MAC error) answer
// drops the working keys so the next call signs on again.
func (c *Client) exchange(ctx context.Context, m *iso8583.Message) (*iso8583.Message, error) {
	if err := c.ensureSignedOn(ctx); err != nil {
		return nil, err
	}
	c.mu.RLock()
	mak := c.mak
	c.mu.RUnlock()
	m.MAC = []byte{}
	b, err := iso8583.Pack(m, mak[:])
	if err != nil {
		return nil, err
	}
	rb, err := c.roundTrip(ctx, b)
	if err != nil {
		return nil, err
	}
	resp, err := iso8583.Unpack(rb)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirer: malformed answer: %w", errUnknown)
	}
	if resp.ResponseCode == "A0" || resp.ResponseCode == "A7" {
		c.mu.Lock()
		c.ok = false
		c.mu.Unlock()
		return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirer: working keys rejected (%s); signing on again", resp.ResponseCode)
	}
	if err := iso8583.VerifyMAC(rb, mak[:]); err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirer: answer fails its MAC: %w", errUnknown)
	}
	if resp.MTI != m.MTI[:2]+string(m.MTI[2]+1)+m.MTI[3:] || resp.STAN != m.STAN || resp.TerminalID != m.TerminalID {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "acquirer: answer does not match the request: %w", errUnknown)
	}
	return resp, nil
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
