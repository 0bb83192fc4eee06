// Package callback delivers the platform's events to developers: to the
// app's own server (Webhook, an HTTPS POST signed with the app's callback
// secret) and to the app's own WASM module (OnEvent, its on_event export).
// Both are outbox.Sinks: the outbox stores the event in the transaction that
// caused it and River retries each sink on the published schedule
// (outbox.Schedule: 4m, 10m, 10m, 1h, 2h, 6h, 15h) until it acknowledges,
// then keeps it as a dead letter for replay.
//
// A callback request is
//
//	POST <callback.url>
//	Content-Type: application/json
//	Jifu-Event-Id: pay_123.succeeded
//	Jifu-Event-Type: payment.succeeded
//	Jifu-Signature: t=1767225600,v1=<hex HMAC-SHA256(secret, "1767225600." + body)>
//
//	{"id":"pay_123.succeeded","type":"payment.succeeded","app":"acme","user":"u1",
//	 "created_at":"2026-01-01T00:00:00Z","data":{...}}
//
// and any 2xx answer acknowledges it; a target in the legacy form
// acknowledges only with a 2xx whose body is exactly "success" (surrounding
// white space ignored), as older payment-notification receivers do.
// Anything else — another status, a redirect, a timeout, a refused
// connection — is a failed attempt. Receivers verify with Verify and
// deduplicate on the event id: delivery is at least once.
//
// Deliver is the one attempt as a plain function, so that a Lambda entry
// point can run it without River; Webhook wraps it for the outbox.
//
//	wh := &callback.Webhook{Targets: callback.ConfigTargets{Config: configStore}, Client: callback.NewHTTPClient(0)}
//	ob, err := outbox.New(outbox.Config{Pool: pool, Sinks: map[string]outbox.Sink{
//		callback.SinkWebhook: wh, callback.SinkOnEvent: &callback.OnEvent{Apps: callback.AppSetDispatcher{Apps: apps}},
//	}})
package callback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/outbox"
)

// Sink names under which the outbox knows this package's sinks.
const (
	SinkWebhook = "webhook"
	SinkOnEvent = "on_event"
)

// DefaultTimeout bounds one callback attempt: connecting, sending and
// reading the answer.
const DefaultTimeout = 10 * time.Second

// maxAnswer is how much of a receiver's answer is read; the rest is dropped.
const maxAnswer = 64 << 10

// Target is where and how an app receives callbacks.
type Target struct {
	URL    string // absolute http(s) URL
	Secret []byte // the HMAC key of Jifu-Signature
	Legacy bool   // acknowledge only with the body "success"
}

// String never shows the secret.
func (t Target) String() string {
	return fmt.Sprintf("callback.Target{URL: %s, Legacy: %v, Secret: <redacted>}", t.URL, t.Legacy)
}

// GoString never shows the secret.
func (t Target) GoString() string { return t.String() }

// LogValue never shows the secret.
func (t Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Targets finds an app's callback target. It returns an error with
// jifu.CodeNotFound when the app has registered none. The marketplace
// implements it from its app registry; ConfigTargets reads the app's
// configuration meanwhile.
type Targets interface {
	Target(ctx context.Context, app string) (Target, error)
}

// ConfigReader reads an app's configuration value; configstore.Store
// satisfies it.
type ConfigReader interface {
	Get(ctx context.Context, app, key string) (value string, secret bool, err error)
}

// Configuration keys ConfigTargets reads.
const (
	KeyURL    = "callback.url"    // the target URL
	KeySecret = "callback.secret" // the signing secret (store it as a secret)
	KeyFormat = "callback.format" // "legacy" for the body-"success" acknowledgement; else standard
)

// ConfigTargets reads targets from each app's configuration: KeyURL,
// KeySecret and optionally KeyFormat.
type ConfigTargets struct {
	Config ConfigReader
}

// Target implements Targets.
func (c ConfigTargets) Target(ctx context.Context, app string) (Target, error) {
	u, _, err := c.Config.Get(ctx, app, KeyURL)
	if jifu.ErrorCode(err) == jifu.CodeNotFound || (err == nil && u == "") {
		return Target{}, jifu.Errorf(jifu.CodeNotFound, "callback: app %s has no callback URL (%s)", app, KeyURL)
	}
	if err != nil {
		return Target{}, err
	}
	secret, _, err := c.Config.Get(ctx, app, KeySecret)
	if jifu.ErrorCode(err) == jifu.CodeNotFound || (err == nil && secret == "") {
		return Target{}, jifu.Errorf(jifu.CodeNotFound, "callback: app %s has no callback secret (%s)", app, KeySecret)
	}
	if err != nil {
		return Target{}, err
	}
	format, _, err := c.Config.Get(ctx, app, KeyFormat)
	if err != nil && jifu.ErrorCode(err) != jifu.CodeNotFound {
		return Target{}, err
	}
	return Target{URL: u, Secret: []byte(secret), Legacy: strings.TrimSpace(format) == "legacy"}, nil
}

// Body is the JSON body of a callback request.
type Body struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	App       string          `json:"app"`
	User      string          `json:"user,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// NewHTTPClient returns the client callbacks share: timeout per attempt
// (DefaultTimeout when 0), no redirects followed (a redirect is a failed
// attempt: the registered URL is the contract), pooled connections. With
// PublicOnly it connects to public addresses only (guard.go).
func NewHTTPClient(timeout time.Duration, opts ...ClientOption) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 8
	t.ResponseHeaderTimeout = timeout
	t.DialContext = dialer(min(timeout, 5*time.Second), 30*time.Second, o).DialContext
	if o.publicOnly {
		t.Proxy = nil
	}
	return &http.Client{
		Timeout:       timeout,
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CheckURL accepts an absolute http or https URL with a host and no user
// information.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return jifu.Errorf(jifu.CodeInvalid, "callback: target URL must be an absolute http(s) URL without credentials")
	}
	return nil
}

// Deliver makes one attempt to deliver ev to target with client, signed at
// now. It returns the receiver's HTTP status (0 when none came) and nil
// when the receiver acknowledged; otherwise a *jifu.Error: CodeInvalid for
// a bad target URL, CodeTimeout when the attempt ran out of time,
// CodeDenied when a PublicOnly client refused the target's address,
// CodeUnavailable for any other failure (refused, non-2xx, wrong legacy
// answer). It is a plain function: River's worker (Webhook) and a Lambda
// handler both call it.
func Deliver(ctx context.Context, client *http.Client, target Target, ev outbox.Event, now time.Time) (status int, err error) {
	if err := CheckURL(target.URL); err != nil {
		return 0, err
	}
	data := ev.Payload
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	body, err := json.Marshal(Body{ID: ev.ID, Type: ev.Type, App: ev.App, User: ev.User, CreatedAt: ev.CreatedAt.UTC(), Data: data})
	if err != nil {
		return 0, jifu.Errorf(jifu.CodeInvalid, "callback: event %s: %w", ev.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		return 0, jifu.Errorf(jifu.CodeInvalid, "callback: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Jifu-Callback/1")
	req.Header.Set(HeaderEventID, ev.ID)
	req.Header.Set(HeaderEventType, ev.Type)
	req.Header.Set(HeaderSignature, Sign(target.Secret, now, body))
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return 0, jifu.Errorf(jifu.CodeTimeout, "callback: no answer in time")
		}
		if errors.Is(err, ErrPrivateAddress) {
			return 0, jifu.Errorf(jifu.CodeDenied, "callback: %s", transportError(err))
		}
		return 0, jifu.Errorf(jifu.CodeUnavailable, "callback: %s", transportError(err))
	}
	defer resp.Body.Close()
	answer, rerr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, jifu.Errorf(jifu.CodeUnavailable, "callback: HTTP %d%s", resp.StatusCode, excerpt(answer))
	}
	if rerr != nil {
		return resp.StatusCode, jifu.Errorf(jifu.CodeUnavailable, "callback: HTTP %d, answer cut: %w", resp.StatusCode, rerr)
	}
	if target.Legacy && string(bytes.TrimSpace(answer)) != "success" {
		return resp.StatusCode, jifu.Errorf(jifu.CodeUnavailable, "callback: HTTP %d without the body \"success\" (legacy form)%s", resp.StatusCode, excerpt(answer))
	}
	return resp.StatusCode, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transportError describes a transport failure without the URL (which
// url.Error repeats and which may carry a token in its query).
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// excerpt is a short, printable piece of a receiver's answer for the
// attempt's record.
func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xFFFD {
			return ' '
		}
		return r
	}, s)
	return ": " + s
}

// Webhook is the outbox sink that calls apps' servers.
type Webhook struct {
	Targets Targets
	Client  *http.Client     // share one; NewHTTPClient(0) when nil
	Now     func() time.Time // signing clock; time.Now when nil
}

// Deliver implements outbox.Sink: it looks up the app's target and makes
// one attempt. An app without a target fails the attempt (it is retried:
// the developer may register the URL in the meantime).
func (w *Webhook) Deliver(ctx context.Context, ev outbox.Event) (int, error) {
	t, err := w.Targets.Target(ctx, ev.App)
	if err != nil {
		return 0, err
	}
	client := w.Client
	if client == nil {
		client = NewHTTPClient(0)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	return Deliver(ctx, client, t, ev, now())
}
