package callback

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
)

// Qualification checks (资格校验): before an order, the platform asks the
// app's server synchronously whether the user may buy. The request is signed
// like a callback (Jifu-Signature over the body) and its body has the
// callback's shape; the answer is a 2xx with {"allowed": true|false,
// "reason": "..."}. A server that does not answer in time, answers anything
// else, or cannot be reached gets the app's configured default instead, so
// an order never waits longer than the timeout.

// Configuration keys of qualification checks (ConfigTargets.Qualifier).
const (
	KeyQualifyURL     = "callback.qualify_url"     // the app's qualification endpoint
	KeyQualifyDefault = "callback.qualify_default" // "allow" or "deny" (the default) when the app does not answer
	KeyQualifyTimeout = "callback.qualify_timeout" // a Go duration, at most MaxQualifyTimeout; DefaultQualifyTimeout when unset
)

// Timeouts of a qualification check.
const (
	DefaultQualifyTimeout = 3 * time.Second
	MaxQualifyTimeout     = 10 * time.Second
)

// Qualifier is how one app answers qualification checks.
type Qualifier struct {
	Target  Target        // URL and signing secret (Legacy is ignored)
	Timeout time.Duration // DefaultQualifyTimeout when 0, at most MaxQualifyTimeout
	Allow   bool          // the decision when the app does not answer properly
}

// QualifyRequest is the question: may User do Type (e.g. "order.qualify")
// with Data?
type QualifyRequest struct {
	ID   string          // unique per check, for the app's logs
	App  string          // the asking app's slug
	Type string          // e.g. "order.qualify"
	User string          // the platform user
	Data json.RawMessage // the order's details
}

// Decision is the outcome of a check.
type Decision struct {
	Allowed   bool
	Reason    string // the app's reason, or why the default applied
	Defaulted bool   // true when the app did not answer properly
	Status    int    // the app's HTTP status, 0 when none
}

// Qualify asks q.Target and returns its decision, or the Qualifier's
// default (Defaulted, with the failure as Reason) when the app does not
// answer in time with a 2xx and a JSON object holding a boolean "allowed".
// It never fails: the order flow goes on either way.
func Qualify(ctx context.Context, client *http.Client, ql Qualifier, q QualifyRequest, now time.Time) Decision {
	fallback := func(status int, why string) Decision {
		return Decision{Allowed: ql.Allow, Reason: why, Defaulted: true, Status: status}
	}
	if err := CheckURL(ql.Target.URL); err != nil {
		return fallback(0, jifu.ErrorMessage(err))
	}
	timeout := ql.Timeout
	if timeout <= 0 {
		timeout = DefaultQualifyTimeout
	}
	timeout = min(timeout, MaxQualifyTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	data := q.Data
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	body, err := json.Marshal(Body{ID: q.ID, Type: q.Type, App: q.App, User: q.User, CreatedAt: now.UTC(), Data: data})
	if err != nil {
		return fallback(0, "callback: qualification data is not JSON")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ql.Target.URL, bytes.NewReader(body))
	if err != nil {
		return fallback(0, "callback: "+err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Jifu-Callback/1")
	req.Header.Set(HeaderEventID, q.ID)
	req.Header.Set(HeaderEventType, q.Type)
	req.Header.Set(HeaderSignature, Sign(ql.Target.Secret, now, body))
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return fallback(0, "callback: no answer within "+timeout.String())
		}
		return fallback(0, "callback: "+transportError(err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fallback(resp.StatusCode, "callback: answer cut: "+transportError(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fallback(resp.StatusCode, "callback: HTTP "+http.StatusText(resp.StatusCode)+excerpt(answer))
	}
	var a struct {
		Allowed *bool  `json:"allowed"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal(answer, &a); err != nil || a.Allowed == nil {
		return fallback(resp.StatusCode, `callback: the answer is not {"allowed": true|false}`+excerpt(answer))
	}
	return Decision{Allowed: *a.Allowed, Reason: clipMessage(strings.TrimSpace(a.Reason)), Status: resp.StatusCode}
}

// Qualifier reads an app's qualification settings from its configuration:
// KeyQualifyURL, KeySecret (shared with callbacks), KeyQualifyDefault and
// KeyQualifyTimeout. CodeNotFound when the app has no qualification URL
// (then it needs no check); CodeInvalid for a bad default or timeout.
func (c ConfigTargets) Qualifier(ctx context.Context, app string) (Qualifier, error) {
	get := func(key string) (string, error) {
		v, _, err := c.Config.Get(ctx, app, key)
		if jifu.ErrorCode(err) == jifu.CodeNotFound {
			return "", nil
		}
		return strings.TrimSpace(v), err
	}
	u, err := get(KeyQualifyURL)
	if err != nil {
		return Qualifier{}, err
	}
	if u == "" {
		return Qualifier{}, jifu.Errorf(jifu.CodeNotFound, "callback: app %s has no qualification URL (%s)", app, KeyQualifyURL)
	}
	secret, err := get(KeySecret)
	if err != nil {
		return Qualifier{}, err
	}
	if secret == "" {
		return Qualifier{}, jifu.Errorf(jifu.CodeNotFound, "callback: app %s has no callback secret (%s)", app, KeySecret)
	}
	q := Qualifier{Target: Target{URL: u, Secret: []byte(secret)}, Timeout: DefaultQualifyTimeout}
	def, err := get(KeyQualifyDefault)
	if err != nil {
		return Qualifier{}, err
	}
	switch def {
	case "", "deny":
	case "allow":
		q.Allow = true
	default:
		return Qualifier{}, jifu.Errorf(jifu.CodeInvalid, "callback: %s of app %s must be allow or deny", KeyQualifyDefault, app)
	}
	ts, err := get(KeyQualifyTimeout)
	if err != nil {
		return Qualifier{}, err
	}
	if ts != "" {
		d, err := time.ParseDuration(ts)
		if err != nil || d <= 0 || d > MaxQualifyTimeout {
			return Qualifier{}, jifu.Errorf(jifu.CodeInvalid, "callback: %s of app %s must be a duration up to %v", KeyQualifyTimeout, app, MaxQualifyTimeout)
		}
		q.Timeout = d
	}
	return q, nil
}
