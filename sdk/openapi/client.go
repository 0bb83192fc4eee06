// Package openapi is a client of the Jifu open API (/openapi/v1/...): it
// signs every request with the app's APPKEY and SECRET (package
// sdk/opensign) and decodes refusals into *Error with their stable code.
//
//	c := openapi.New("https://open.jifu.example", opensign.Key{AppKey: key, Secret: []byte(secret)})
//	info, err := c.App(ctx)
//	pay, err := c.CreatePayment(ctx, openapi.PaymentRequest{User: "u42", Amount: 1999, Description: "order A1001", Key: "A1001"})
//	var e *openapi.Error
//	if errors.As(err, &e) && e.Code == "rate_limited" { time.Sleep(e.RetryAfter) }
package openapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jifu-open/jifu/sdk/opensign"
)

// Prefix is where the open API lives on the server.
const Prefix = "/openapi/v1"

// AccessTokenHeader carries a user's OAuth access token on UserInfo.
const AccessTokenHeader = "Jifu-Access-Token"

// Client calls the open API as one app.
type Client struct {
	BaseURL string // scheme://host[:port], no trailing slash
	Key     opensign.Key
	HTTP    *http.Client     // http.DefaultClient when nil
	Now     func() time.Time // the signing clock; time.Now when nil
}

// New returns a client of the server at baseURL signing with key.
func New(baseURL string, key opensign.Key) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Key: key}
}

// Do sends a signed request to Prefix+path with query, in as the JSON
// body (none when nil), and decodes a 2xx answer into out (when not nil).
// A refusal is *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("openapi: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := c.BaseURL + Prefix + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("openapi: %w", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if err := opensign.Sign(req, c.Key, now()); err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("openapi: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("openapi: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb struct {
			Error *Error `json:"error"`
		}
		if json.Unmarshal(raw, &eb) != nil || eb.Error == nil {
			eb.Error = &Error{Code: "http_" + strconv.Itoa(resp.StatusCode), Message: strings.TrimSpace(string(raw))}
		}
		eb.Error.Status = resp.StatusCode
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			eb.Error.RetryAfter = time.Duration(s) * time.Second
		}
		return eb.Error
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("openapi: %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// App returns the calling app's information.
func (c *Client) App(ctx context.Context) (*AppInfo, error) {
	var out AppInfo
	return &out, c.Do(ctx, http.MethodGet, "/app", nil, nil, nil, &out)
}

// UploadVersion uploads a version of the app (its module and jifu.json);
// with submit it goes to review once its automated checks pass.
func (c *Client) UploadVersion(ctx context.Context, wasm, manifest []byte, submit bool) (*VersionInfo, error) {
	var out VersionInfo
	in := VersionUpload{Manifest: json.RawMessage(manifest), Wasm: base64.StdEncoding.EncodeToString(wasm), Submit: submit}
	return &out, c.Do(ctx, http.MethodPost, "/versions", nil, nil, in, &out)
}

// CreatePayment creates a payment intent for a user, who confirms it at
// ConfirmURL. The same Key with the same content answers the same intent.
func (c *Client) CreatePayment(ctx context.Context, in PaymentRequest) (*Payment, error) {
	var out Payment
	return &out, c.Do(ctx, http.MethodPost, "/payments", nil, nil, in, &out)
}

// Payment returns a payment intent.
func (c *Client) Payment(ctx context.Context, id string) (*Payment, error) {
	var out Payment
	return &out, c.Do(ctx, http.MethodGet, "/payments/"+url.PathEscape(id), nil, nil, nil, &out)
}

// Refund refunds part or all of a paid intent.
func (c *Client) Refund(ctx context.Context, id string, in RefundRequest) (*Refund, error) {
	var out Refund
	return &out, c.Do(ctx, http.MethodPost, "/payments/"+url.PathEscape(id)+"/refunds", nil, nil, in, &out)
}

// Refunds lists an intent's refunds.
func (c *Client) Refunds(ctx context.Context, id string) ([]Refund, error) {
	var out struct {
		Refunds []Refund `json:"refunds"`
	}
	return out.Refunds, c.Do(ctx, http.MethodGet, "/payments/"+url.PathEscape(id)+"/refunds", nil, nil, nil, &out)
}

// Deliveries lists the app's callback deliveries, newest first; state is
// "", pending, delivered or dead.
func (c *Client) Deliveries(ctx context.Context, state string, limit int) ([]Delivery, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Deliveries []Delivery `json:"deliveries"`
	}
	return out.Deliveries, c.Do(ctx, http.MethodGet, "/callbacks", q, nil, nil, &out)
}

// Replay sends a dead or delivered callback again ("webhook" when sink is
// empty).
func (c *Client) Replay(ctx context.Context, eventID, sink string) error {
	q := url.Values{}
	if sink != "" {
		q.Set("sink", sink)
	}
	return c.Do(ctx, http.MethodPost, "/callbacks/"+url.PathEscape(eventID)+"/replay", q, nil, nil, nil)
}

// UserInfo returns what a user's OAuth access token lets the app see.
func (c *Client) UserInfo(ctx context.Context, accessToken string) (*UserInfo, error) {
	var out UserInfo
	h := http.Header{}
	h.Set(AccessTokenHeader, accessToken)
	return &out, c.Do(ctx, http.MethodGet, "/user", nil, h, nil, &out)
}

// SetRedirectURIs registers the app's OAuth2 redirect URIs.
func (c *Client) SetRedirectURIs(ctx context.Context, uris []string) error {
	return c.Do(ctx, http.MethodPut, "/oauth/client", nil, nil, OAuthClient{RedirectURIs: uris}, nil)
}
