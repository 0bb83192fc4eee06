package bank

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	URL      string // the bank's base URL: http://127.0.0.1:9400
	Merchant string // the platform's merchant id at the bank
	Secret   []byte // the shared HMAC key, at least 16 bytes
	// Timeout bounds each call; past it the outcome is Unknown. Default 10 s.
	Timeout time.Duration
	HTTP    *http.Client     // default: a client of its own
	Clock   func() time.Time // default time.Now
}

// Client is a Gateway over the bank's signed HTTP protocol. It is safe for
// concurrent use.
type Client struct {
	cfg  ClientConfig
	base *url.URL
}

var _ Gateway = (*Client)(nil)

// NewClient returns a Client; CodeInvalid when the configuration is
// incomplete.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, jifu.Errorf(jifu.CodeInvalid, "bank: client URL %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Merchant == "" || len(cfg.Secret) < 16 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "bank: client needs a merchant id and a secret of 16 bytes or more")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return &Client{cfg: cfg, base: u}, nil
}

// Debit implements Gateway: o.Kind is set to Debit.
func (c *Client) Debit(ctx context.Context, o Order) (Result, error) {
	o.Kind = Debit
	return c.send(ctx, o)
}

// Credit implements Gateway: o.Kind is set to Credit.
func (c *Client) Credit(ctx context.Context, o Order) (Result, error) {
	o.Kind = Credit
	return c.send(ctx, o)
}

func (c *Client) send(ctx context.Context, o Order) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{ID: o.ID, Status: Failed, Reason: ReasonRejected}, err
	}
	body, err := json.Marshal(o)
	if err != nil {
		return Result{ID: o.ID, Status: Failed, Reason: ReasonRejected}, jifu.Errorf(jifu.CodeInternal, "bank: encoding order: %w", err)
	}
	var r Result
	err = c.do(ctx, http.MethodPost, "/v1/orders", o.ID, body, &r)
	return c.outcome(o.ID, r, err)
}

// Status implements Gateway. Asking closes an id the bank never received
// (Failed, ReasonNotReceived), so the answer is final.
func (c *Client) Status(ctx context.Context, id string) (Result, error) {
	if !ValidID(id) {
		return Result{ID: id, Status: Failed, Reason: ReasonRejected}, jifu.Errorf(jifu.CodeInvalid, "bank: order id %q is malformed", id)
	}
	var r Result
	err := c.do(ctx, http.MethodGet, "/v1/orders/"+id, "", nil, &r)
	return c.outcome(id, r, err)
}

// Statement implements Gateway: the executed orders of day's date (in
// China Standard Time).
func (c *Client) Statement(ctx context.Context, day time.Time) (Statement, error) {
	var s Statement
	err := c.do(ctx, http.MethodGet, "/v1/statements/"+day.In(CST).Format(time.DateOnly), "", nil, &s)
	return s, err
}

// outcome turns a call's error into a Result: a definite refusal of the
// request (4xx other than a conflict) is Failed with ReasonRejected; any
// other failure (timeout, connection, 5xx, bad answer) is Unknown.
func (c *Client) outcome(id string, r Result, err error) (Result, error) {
	if err == nil {
		if r.ID != id || (r.Status != Succeeded && r.Status != Failed) {
			return Result{ID: id, Status: Unknown}, jifu.Errorf(jifu.CodeUnavailable, "bank: answer for another order or without an outcome")
		}
		return r, nil
	}
	var re *rejectedError
	if errors.As(err, &re) {
		return Result{ID: id, Status: Failed, Reason: ReasonRejected}, err
	}
	return Result{ID: id, Status: Unknown}, err
}

// rejectedError is a definite refusal of a request by the bank: it did nothing.
type rejectedError struct{ status int }

func (e *rejectedError) Error() string {
	return "bank: request rejected with HTTP " + http.StatusText(e.status)
}

// do sends one signed request and decodes the verified answer into out.
func (c *Client) do(ctx context.Context, method, path, idem string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := *c.base
	u.Path += path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return jifu.Errorf(jifu.CodeInternal, "bank: building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderMerchant, c.cfg.Merchant)
	if idem != "" {
		req.Header.Set(HeaderIdemKey, idem)
	}
	SetSignature(req.Header, c.cfg.Secret, c.cfg.Clock(), method, u.Path, body)
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return jifu.Errorf(jifu.CodeTimeout, "bank: no answer within %s: outcome unknown: %w", c.cfg.Timeout, err)
		}
		return jifu.Errorf(jifu.CodeUnavailable, "bank: outcome unknown: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		if ctx.Err() != nil {
			return jifu.Errorf(jifu.CodeTimeout, "bank: answer cut off after %s: outcome unknown: %w", c.cfg.Timeout, err)
		}
		return jifu.Errorf(jifu.CodeUnavailable, "bank: reading answer: outcome unknown: %w", err)
	}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusTooManyRequests:
		return jifu.Errorf(jifu.CodeUnavailable, "bank: HTTP %d: outcome unknown", resp.StatusCode)
	case resp.StatusCode >= 400:
		return jifu.Errorf(jifu.CodeDenied, "bank: %s: %w", bankMessage(rb), &rejectedError{status: resp.StatusCode})
	case resp.StatusCode != http.StatusOK:
		return jifu.Errorf(jifu.CodeUnavailable, "bank: unexpected HTTP %d: outcome unknown", resp.StatusCode)
	}
	if err := Verify(resp.Header, c.cfg.Secret, c.cfg.Clock(), "RESPONSE", u.Path, rb); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "bank: answer not authentic: outcome unknown: %w", err)
	}
	if err := json.Unmarshal(rb, out); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "bank: malformed answer: outcome unknown: %w", err)
	}
	return nil
}

// bankMessage extracts the message of the bank's error body.
func bankMessage(b []byte) string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
		return "refused"
	}
	return e.Error.Code + ": " + e.Error.Message
}
