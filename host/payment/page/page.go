// Package page is the host's payment confirmation page, /pay/{id}: the
// place where a user sees what an app asks them to pay (amount, payee,
// description), chooses how (balance, credit line, or a combination, with
// what each can cover) and confirms. The host renders it, never an app, and
// it refuses to be framed, so an app cannot dress it up or click it for the
// user. The confirmation form carries an HMAC token bound to the intent and
// the user; a POST without the right token changes nothing.
//
//	h := page.New(page.Config{Payments: svc, Identity: page.DevIdentity, Key: key})
//	mux.Handle("/pay/", h)
//
// The views are templ components (view.templ; `go tool templ generate`
// regenerates view_templ.go, which is committed).
package page

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
)

// Payments is what the page needs of the payment service (package payment's
// Service).
type Payments interface {
	Intent(ctx context.Context, id string) (payment.Intent, error)
	Available(ctx context.Context, user string) (map[string]int64, error)
	Methods() []string
	Confirm(ctx context.Context, id, user string, splits []payment.Split) (payment.Intent, error)
}

// Identity returns the signed-in user of a request, "" for nobody. The
// store's session provides it; DevIdentity stands in for development.
type Identity func(r *http.Request) string

// DevIdentity trusts the X-Jifu-User header, as web's development mode does.
// Never use it where the server is reachable by others.
func DevIdentity(r *http.Request) string { return r.Header.Get("X-Jifu-User") }

// Config holds the page's dependencies.
type Config struct {
	Payments Payments
	Identity Identity
	Key      []byte // the HMAC key of form tokens, at least 32 bytes
	Logger   *slog.Logger
	Clock    func() time.Time // default time.Now; the service's clock
	// Status maps an error code to the HTTP status of the error page: the
	// web layer's one mapping (web/respond.Status), required.
	Status func(code string) int
}

// Handler serves GET and POST /pay/{id}.
type Handler struct {
	cfg Config
	log *slog.Logger
}

// New returns the page's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Payments == nil || cfg.Identity == nil || cfg.Status == nil || len(cfg.Key) < 32 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "payment page: Payments, Identity, Status and a key of 32 bytes or more are required")
	}
	h := &Handler{cfg: cfg, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.cfg.Clock == nil {
		h.cfg.Clock = time.Now
	}
	return h, nil
}

// Token returns the form token that binds a confirmation to intent id and
// user: HMAC-SHA256 under key, base64url.
func Token(key []byte, id, user string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("jifu.pay.confirm.v1\x00" + id + "\x00" + user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validToken compares in constant time.
func validToken(key []byte, id, user, token string) bool {
	return hmac.Equal([]byte(Token(key, id, user)), []byte(token))
}

const maxFormBytes = 4 << 10

var labels = map[string]string{
	payment.MethodBalance:  "余额 Balance",
	payment.MethodCredit:   "信用额度 Credit line",
	payment.MethodCombined: "组合支付 Combined",
	"card":                 "银行卡 Card",
}

func label(m string) string {
	if l, ok := labels[m]; ok {
		return l
	}
	return m
}

// confirmView is what the confirmation form shows.
type confirmView struct {
	ID, App, Payee, Description, Amount, ExpiresAt string
	Action, Token, Error                           string
	Options                                        []option
	Shares                                         []share
}

type option struct {
	Value, Label, Available string
	Enough, Checked         bool
}

type share struct{ Method, Label, Value string }

// resultView is an outcome or an error.
type resultView struct {
	Title, Message, State, Amount, Back string
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")

	id, ok := strings.CutPrefix(r.URL.Path, "/pay/")
	if !ok || id == "" || strings.Contains(id, "/") || len(id) > 64 {
		h.fail(w, r, jifu.Errorf(jifu.CodeNotFound, "no such payment"))
		return
	}
	user := h.cfg.Identity(r)
	if user == "" {
		h.fail(w, r, jifu.Errorf(jifu.CodeDenied, "sign in to pay"))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.show(w, r, id, user, "")
	case http.MethodPost:
		h.confirm(w, r, id, user)
	default:
		hd.Set("Allow", "GET, POST")
		h.fail(w, r, jifu.Errorf(jifu.CodeInvalid, "method not allowed"))
	}
}

// load returns the intent if it is user's; another user's intent is not
// found, so ids cannot be probed.
func (h *Handler) load(ctx context.Context, id, user string) (payment.Intent, error) {
	in, err := h.cfg.Payments.Intent(ctx, id)
	if err == nil && in.User != user {
		err = jifu.Errorf(jifu.CodeNotFound, "no such payment")
	}
	return in, err
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request, id, user, problem string) {
	ctx := r.Context()
	in, err := h.load(ctx, id, user)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if in.State != payment.StateCreated || !h.cfg.Clock().Before(in.ExpiresAt) {
		h.outcome(w, r, in, http.StatusOK)
		return
	}
	av, err := h.cfg.Payments.Available(ctx, user)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := confirmView{ID: in.ID, App: in.App, Payee: in.Payee, Description: in.Description, Amount: "¥" + ledger.Yuan(in.Amount),
		ExpiresAt: in.ExpiresAt.Local().Format("2006-01-02 15:04:05"), Action: payment.ConfirmPath(in.ID),
		Token: Token(h.cfg.Key, in.ID, user), Error: problem}
	if v.Payee == "" {
		v.Payee = in.App
	}
	// Prefill: the first method that covers it all; otherwise combined,
	// each method in order taking what it can.
	methods := h.cfg.Payments.Methods()
	chosen := ""
	for _, m := range methods {
		if av[m] >= in.Amount {
			chosen = m
			break
		}
	}
	left := in.Amount
	for _, m := range methods {
		v.Options = append(v.Options, option{Value: m, Label: label(m), Available: "¥" + ledger.Yuan(av[m]),
			Enough: av[m] >= in.Amount, Checked: m == chosen})
		take := min(left, av[m])
		left -= take
		v.Shares = append(v.Shares, share{Method: m, Label: label(m), Value: ledger.Yuan(take)})
	}
	if len(methods) > 1 {
		v.Options = append(v.Options, option{Value: payment.MethodCombined, Label: label(payment.MethodCombined),
			Enough: true, Checked: chosen == ""})
	}
	status := http.StatusOK
	if problem != "" {
		status = http.StatusUnprocessableEntity
	}
	h.render(w, r, status, confirmPage(v))
}

func (h *Handler) confirm(w http.ResponseWriter, r *http.Request, id, user string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, jifu.Errorf(jifu.CodeInvalid, "the form could not be read"))
		return
	}
	if !validToken(h.cfg.Key, id, user, r.PostForm.Get("token")) {
		h.log.WarnContext(r.Context(), "payment page: bad form token", "intent", id)
		h.fail(w, r, jifu.Errorf(jifu.CodeDenied, "this confirmation form is not valid for you; open the payment again"))
		return
	}
	in, err := h.load(r.Context(), id, user)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	splits, err := splitsOf(r, h.cfg.Payments.Methods(), in.Amount)
	if err != nil {
		h.show(w, r, id, user, jifu.ErrorMessage(err))
		return
	}
	done, err := h.cfg.Payments.Confirm(r.Context(), id, user, splits)
	switch {
	case jifu.ErrorCode(err) == jifu.CodeInvalid:
		h.show(w, r, id, user, jifu.ErrorMessage(err))
	case jifu.ErrorCode(err) == jifu.CodeConflict:
		// Already confirmed, or expired meanwhile: show where it stands.
		if cur, lerr := h.load(r.Context(), id, user); lerr == nil {
			h.outcome(w, r, cur, http.StatusConflict)
			return
		}
		h.fail(w, r, err)
	case err != nil:
		h.fail(w, r, err)
	default:
		h.outcome(w, r, done, http.StatusOK)
	}
}

// splitsOf reads the chosen method, or for a combined payment each
// method's share in yuan.
func splitsOf(r *http.Request, methods []string, amount int64) ([]payment.Split, error) {
	m := r.PostForm.Get("method")
	if m != payment.MethodCombined {
		return []payment.Split{{Method: m, Amount: amount}}, nil
	}
	var out []payment.Split
	for _, name := range methods {
		v := strings.TrimSpace(r.PostForm.Get("share_" + name))
		if v == "" {
			continue
		}
		fen, err := ledger.ParseYuan(v)
		if err != nil {
			return nil, jifu.Errorf(jifu.CodeInvalid, "%s: %q is not an amount in yuan", label(name), v)
		}
		if fen > 0 {
			out = append(out, payment.Split{Method: name, Amount: fen})
		}
	}
	return out, nil
}

func (h *Handler) outcome(w http.ResponseWriter, r *http.Request, in payment.Intent, status int) {
	v := resultView{State: string(in.State), Amount: "¥" + ledger.Yuan(in.Amount), Back: "/apps/" + in.App + "/"}
	switch {
	case in.State.Paid():
		v.Title, v.Message = "支付成功 Paid", "已付款给 "+payeeOf(in)+"。 The payment went through."
	case in.State == payment.StateFailed:
		v.Title, v.Message = "支付失败 Not paid", "没有扣款。 Nothing was taken: "+in.Failure
	case in.State == payment.StateExpired || in.State == payment.StateCreated:
		v.Title, v.Message, v.State = "已过期 Expired", "这笔付款已过期。 This payment request expired; nothing was taken.", string(payment.StateExpired)
	default:
		v.Title, v.Message = "处理中 Processing", "付款处理中。 The payment is being processed."
	}
	h.render(w, r, status, resultPage(v))
}

func payeeOf(in payment.Intent) string {
	if in.Payee != "" {
		return in.Payee
	}
	return in.App
}

// fail shows an error page with the code's status.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := h.cfg.Status(jifu.ErrorCode(err))
	msg := jifu.ErrorMessage(err)
	if status >= 500 {
		h.log.WarnContext(r.Context(), "payment page failed", "path", r.URL.Path, "err", err)
		msg = "暂时无法处理，请稍后再试。 Something went wrong on our side; try again later."
	}
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		status = http.StatusRequestEntityTooLarge
	}
	h.render(w, r, status, resultPage(resultView{Title: "无法付款 Cannot pay", Message: msg, State: "error"}))
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if err := c.Render(r.Context(), w); err != nil {
		h.log.WarnContext(r.Context(), "payment page: render", "err", err)
	}
}
