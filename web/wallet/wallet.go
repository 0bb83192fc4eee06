// Package wallet is the store user's wallet page, /wallet: the balance
// (available and held), the bound bank account (masked), top-up and
// withdrawal forms, and the history of both. Money moves through
// host/funding; the page only renders and forwards.
//
// Each rendered form carries a fresh idempotency key and an HMAC token
// binding that key to the user, so a double submission moves money once
// and a forged cross-site form without the token changes nothing.
//
//	h, _ := wallet.New(wallet.Config{Funding: svc, Identity: page.DevIdentity, Key: key})
//	mux.Handle("/wallet", h)
//	mux.Handle("/wallet/", h)
//
// The views are templ components (view.templ; `go tool templ generate`
// regenerates view_templ.go, which is committed).
package wallet

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"github.com/jifu-open/jifu/web/respond"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/bank"
	"github.com/jifu-open/jifu/host/funding"
	"github.com/jifu-open/jifu/host/ledger"
)

// Funding is what the page needs of host/funding's Service.
type Funding interface {
	Wallet(ctx context.Context, user string) (funding.Wallet, error)
	BoundAccount(ctx context.Context, user string) (string, error)
	BindAccount(ctx context.Context, user, accountNo string) error
	TopUp(ctx context.Context, user, key string, amount int64) (funding.Request, error)
	Withdraw(ctx context.Context, user, key string, amount int64) (funding.Request, error)
	History(ctx context.Context, user string, limit int) ([]funding.Request, error)
}

// Config holds the page's dependencies.
type Config struct {
	Funding  Funding
	Identity func(*http.Request) string // the signed-in store user, "" for nobody (the source web uses)
	Key      []byte                     // HMAC key of form tokens, at least 32 bytes
	Logger   *slog.Logger
}

// Handler serves GET /wallet and POST /wallet/{topup,withdraw,account}.
type Handler struct {
	cfg Config
	log *slog.Logger
}

// New returns the page's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Funding == nil || cfg.Identity == nil || len(cfg.Key) < 32 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "wallet page: Funding, Identity and a key of 32 bytes or more are required")
	}
	h := &Handler{cfg: cfg, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// Token returns the form token binding a form's key to user.
func Token(key []byte, formKey, user string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("jifu.wallet.form.v1\x00" + formKey + "\x00" + user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

const maxFormBytes = 4 << 10

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	user := h.cfg.Identity(r)
	if user == "" {
		h.render(w, r, http.StatusForbidden, errorPage("请先登录 Sign in to see your wallet"))
		return
	}
	action := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/wallet"), "/")
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		if action != "" {
			h.render(w, r, http.StatusNotFound, errorPage("没有此页面 No such page"))
			return
		}
		h.show(w, r, user, http.StatusOK, notice{})
	case r.Method == http.MethodPost && (action == "topup" || action == "withdraw" || action == "account"):
		h.post(w, r, user, action)
	default:
		hd.Set("Allow", "GET, POST")
		h.render(w, r, http.StatusMethodNotAllowed, errorPage("不支持的请求 Method not allowed"))
	}
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request, user, action string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.show(w, r, user, http.StatusBadRequest, notice{Error: "表单无效 Malformed form"})
		return
	}
	key := r.PostForm.Get("key")
	if key == "" || !hmac.Equal([]byte(Token(h.cfg.Key, key, user)), []byte(r.PostForm.Get("token"))) {
		h.show(w, r, user, http.StatusForbidden, notice{Error: "表单已过期，请重试 The form expired; please try again"})
		return
	}
	ctx := r.Context()
	if action == "account" {
		if err := h.cfg.Funding.BindAccount(ctx, user, strings.ReplaceAll(r.PostForm.Get("account"), " ", "")); err != nil {
			h.show(w, r, user, respond.Status(jifu.ErrorCode(err)), notice{Error: message(err)})
			return
		}
		h.show(w, r, user, http.StatusOK, notice{OK: "已绑定银行账户 Bank account bound"})
		return
	}
	amount, err := ledger.ParseYuan(strings.TrimSpace(r.PostForm.Get("amount")))
	if err != nil || amount <= 0 {
		h.show(w, r, user, http.StatusBadRequest, notice{Error: "请输入金额，如 100.00 Enter an amount such as 100.00"})
		return
	}
	var req funding.Request
	if action == "topup" {
		req, err = h.cfg.Funding.TopUp(ctx, user, key, amount)
	} else {
		req, err = h.cfg.Funding.Withdraw(ctx, user, key, amount)
	}
	if err != nil {
		h.show(w, r, user, respond.Status(jifu.ErrorCode(err)), notice{Error: message(err)})
		return
	}
	h.show(w, r, user, http.StatusOK, outcome(req))
}

// outcome describes a request's state to its user.
func outcome(r funding.Request) notice {
	what := map[funding.Kind]string{funding.TopUp: "充值 Top-up", funding.Withdraw: "提现 Withdrawal"}[r.Kind]
	amt := " ¥" + ledger.Yuan(r.Amount)
	switch r.State {
	case funding.StateSucceeded:
		return notice{OK: what + amt + " 成功 succeeded"}
	case funding.StateFailed:
		return notice{Error: what + amt + " 失败 failed: " + reasonText(r.Reason)}
	default:
		return notice{Pending: what + amt + " 处理中 is being confirmed by the bank"}
	}
}

var reasons = map[string]string{
	bank.ReasonInsufficientFunds: "余额不足 insufficient funds",
	bank.ReasonNoAccount:         "账户不存在 no such account",
	bank.ReasonAccountFrozen:     "账户冻结 account frozen",
	bank.ReasonDeclined:          "银行拒绝 declined by the bank",
	bank.ReasonNotReceived:       "银行未收到 not received by the bank",
	bank.ReasonRejected:          "请求被拒 request rejected",
}

func reasonText(r string) string {
	if t, ok := reasons[r]; ok {
		return t
	}
	return r
}

func message(err error) string {
	switch {
	case ledger.ReasonOf(err) == ledger.ErrInsufficientFunds:
		return "钱包余额不足 Not enough in your wallet"
	case jifu.ErrorCode(err) == jifu.CodeNotFound:
		return "请先绑定银行账户 Bind a bank account first"
	case jifu.ErrorCode(err) == jifu.CodeInternal:
		return "系统错误 Something went wrong; please try again"
	}
	return jifu.ErrorMessage(err)
}

type notice struct{ OK, Error, Pending string }

// view is what the wallet page shows.
type view struct {
	Available, Held, Account string
	Key, Token               string
	Notice                   notice
	History                  []row
}

type row struct{ When, Kind, Amount, Account, State, StateClass, Reason string }

func (h *Handler) show(w http.ResponseWriter, r *http.Request, user string, status int, n notice) {
	ctx := r.Context()
	wal, err := h.cfg.Funding.Wallet(ctx, user)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	acct, err := h.cfg.Funding.BoundAccount(ctx, user)
	if err != nil && jifu.ErrorCode(err) != jifu.CodeNotFound {
		h.fail(w, r, err)
		return
	}
	hist, err := h.cfg.Funding.History(ctx, user, 20)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	key := newKey()
	v := view{Available: "¥" + ledger.Yuan(wal.Available), Held: "¥" + ledger.Yuan(wal.Held), Key: key,
		Token: Token(h.cfg.Key, key, user), Notice: n}
	if acct != "" {
		v.Account = bank.Mask(acct)
	}
	for _, q := range hist {
		v.History = append(v.History, row{When: q.CreatedAt.In(bank.CST).Format(time.DateTime),
			Kind:   map[funding.Kind]string{funding.TopUp: "充值 Top-up", funding.Withdraw: "提现 Withdrawal"}[q.Kind],
			Amount: "¥" + ledger.Yuan(q.Amount), Account: q.Account, State: string(q.State), StateClass: "state-" + string(q.State),
			Reason: reasonText(q.Reason)})
	}
	h.render(w, r, status, walletPage(v))
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.log.WarnContext(r.Context(), "wallet page", "err", err)
	h.render(w, r, respond.Status(jifu.ErrorCode(err)), errorPage(message(err)))
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		h.log.ErrorContext(r.Context(), "wallet page: render", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

func newKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "w" + hex.EncodeToString(b)
}
