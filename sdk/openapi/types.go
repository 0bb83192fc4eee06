package openapi

import (
	"encoding/json"
	"time"
)

// The JSON bodies of the open API (/openapi/v1), shared by the server
// (package github.com/jifu-open/jifu/openapi) and this client.

// AppInfo is the answer of GET /openapi/v1/app.
type AppInfo struct {
	Slug         string   `json:"slug"`
	Name         string   `json:"name"`
	Category     string   `json:"category"`
	Environment  string   `json:"environment"`
	AppKey       string   `json:"app_key"`
	ServiceLevel string   `json:"service_level"`
	CallbackURL  string   `json:"callback_url"`
	IPWhitelist  []string `json:"ip_whitelist"`
}

// VersionUpload is the body of POST /openapi/v1/versions.
type VersionUpload struct {
	Manifest json.RawMessage `json:"manifest"` // jifu.json
	Wasm     string          `json:"wasm"`     // the module, standard base64
	Submit   bool            `json:"submit"`   // submit for review once the checks pass
}

// VersionInfo is the answer of POST /openapi/v1/versions.
type VersionInfo struct {
	ID        int64  `json:"id"`
	Version   string `json:"version"`
	SHA256    string `json:"sha256"`
	Status    string `json:"status"`
	Passed    bool   `json:"checks_passed"`
	Submitted bool   `json:"submitted"`
}

// PaymentRequest is the body of POST /openapi/v1/payments.
type PaymentRequest struct {
	User        string `json:"user"`        // the user's open id (as apps see it: "u123")
	Amount      int64  `json:"amount"`      // fen
	Description string `json:"description"` //
	Payee       string `json:"payee,omitempty"`
	Key         string `json:"key"` // idempotency key: the same key and content answer the same intent
}

// Payment is a payment intent as the open API shows it.
type Payment struct {
	ID          string    `json:"id"`
	Key         string    `json:"key"`
	User        string    `json:"user"`
	Payee       string    `json:"payee,omitempty"`
	Amount      int64     `json:"amount"`
	Description string    `json:"description"`
	State       string    `json:"state"`
	Method      string    `json:"method,omitempty"`
	Refunded    int64     `json:"refunded"`
	Failure     string    `json:"failure,omitempty"`
	ConfirmURL  string    `json:"confirm_url"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	Replayed    bool      `json:"replayed,omitempty"`
	Sandbox     bool      `json:"sandbox,omitempty"`
}

// RefundRequest is the body of POST /openapi/v1/payments/{id}/refunds.
type RefundRequest struct {
	Amount int64  `json:"amount"` // fen
	Key    string `json:"key"`    // idempotency key
}

// Refund is a refund as the open API shows it.
type Refund struct {
	ID        string    `json:"id"`
	PaymentID string    `json:"payment_id"`
	Key       string    `json:"key"`
	Amount    int64     `json:"amount"`
	Refunded  int64     `json:"refunded"`
	State     string    `json:"state"`
	Failure   string    `json:"failure,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Replayed  bool      `json:"replayed,omitempty"`
}

// Delivery is one callback delivery as the open API lists it.
type Delivery struct {
	EventID       string     `json:"event_id"`
	Sink          string     `json:"sink"`
	Type          string     `json:"type"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

// UserInfo is the answer of GET /openapi/v1/user: what the access token's
// scopes let the app see, masked.
type UserInfo struct {
	OpenID   string   `json:"open_id"`
	Scopes   []string `json:"scopes"`
	Phone    string   `json:"phone,omitempty"`     // user.basic: 138****0000
	Region   string   `json:"region,omitempty"`    // user.basic
	Level    int      `json:"level,omitempty"`     // user.basic
	RealName string   `json:"real_name,omitempty"` // user.realname: 张*
	IDNumber string   `json:"id_number,omitempty"` // user.realname: first 6 and last 4
	Verified bool     `json:"verified,omitempty"`  // user.realname
}

// OAuthClient is the body of PUT /openapi/v1/oauth/client.
type OAuthClient struct {
	RedirectURIs []string `json:"redirect_uris"`
}

// Error is a refusal of the open API: its stable code, message, HTTP
// status and, for a refused upload, the manifest's problems.
type Error struct {
	Status   int       `json:"-"`
	Code     string    `json:"code"`
	Message  string    `json:"message"`
	Problems []Problem `json:"problems,omitempty"`
	// RetryAfter is the Retry-After of a rate-limited call.
	RetryAfter time.Duration `json:"-"`
}

// Problem is one problem of a refused upload.
type Problem struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
