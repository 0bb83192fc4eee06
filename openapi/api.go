package openapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/marketplace"
	wire "github.com/jifu-open/jifu/sdk/openapi"
)

// prefix is where the signed API lives.
const prefix = "/openapi/v1"

// Handler returns the open API, /openapi.json, the OAuth2 server and the
// QR login, passing every other request to next (nil: 404).
func (s *Server) Handler(next http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Get("/openapi.json", serveSpec)
	r.Route(prefix, func(r chi.Router) {
		r.Use(s.verify)
		r.Get("/app", s.appInfo)
		r.Post("/versions", s.uploadVersion)
		r.Post("/payments", s.createPayment)
		r.Get("/payments/{id}", s.getPayment)
		r.Post("/payments/{id}/refunds", s.refund)
		r.Get("/payments/{id}/refunds", s.listRefunds)
		r.Get("/callbacks", s.listDeliveries)
		r.Post("/callbacks/{event}/replay", s.replay)
		r.Get("/user", s.userInfo)
		r.Put("/oauth/client", s.setOAuthClient)
		r.Get("/oauth/client", s.getOAuthClient)
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, jifu.Errorf(jifu.CodeNotFound, "openapi: no route %s %s", r.Method, r.URL.Path))
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, jifu.Errorf(jifu.CodeNotFound, "openapi: no route %s %s", r.Method, r.URL.Path))
		})
	})
	s.oauth.routes(r)
	s.qr.routes(r)
	if next == nil {
		next = http.NotFoundHandler()
	}
	r.NotFound(next.ServeHTTP)
	r.MethodNotAllowed(next.ServeHTTP)
	return r
}

func caller(r *http.Request) *Caller {
	c, _ := CallerFrom(r.Context())
	return c
}

// decode reads a JSON body into v, refusing unknown fields.
func decode(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return jifu.Errorf(jifu.CodeInvalid, "openapi: body: %v", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return jifu.Errorf(jifu.CodeInvalid, "openapi: body: trailing data after the JSON object")
	}
	return nil
}

func (s *Server) appInfo(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	app, err := s.cfg.Market.App(r.Context(), marketplace.System, c.Key.AppID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	wl := []string{}
	for _, p := range c.Key.IPWhitelist {
		wl = append(wl, p.String())
	}
	writeJSON(w, http.StatusOK, wire.AppInfo{Slug: app.Slug, Name: app.Name, Category: app.Category, Environment: c.Key.Env,
		AppKey: c.Key.AppKey, ServiceLevel: c.Level, CallbackURL: app.CallbackURL, IPWhitelist: wl})
}

// developer is the actor of uploads through the open API: the app's
// developer, without a staff account (the audit shows no account).
func developer(app *marketplace.App, c *Caller) marketplace.Actor {
	return marketplace.Actor{Role: marketplace.RoleDeveloper, DeveloperID: app.DeveloperID, Name: "openapi " + c.Key.AppKey}
}

func (s *Server) uploadVersion(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	var in wire.VersionUpload
	if err := decode(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	wasm, err := base64.StdEncoding.DecodeString(in.Wasm)
	if err != nil || len(wasm) == 0 || len(in.Manifest) == 0 {
		s.writeError(w, r, jifu.Errorf(jifu.CodeInvalid, "openapi: manifest and wasm (standard base64) are required"))
		return
	}
	app, err := s.cfg.Market.App(r.Context(), marketplace.System, c.Key.AppID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	by := developer(app, c)
	v, err := s.cfg.Market.UploadVersion(r.Context(), by, app.ID, wasm, in.Manifest)
	if err != nil {
		if ps := marketplace.Problems(err); len(ps) > 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
				"code": jifu.ErrorCode(err), "message": jifu.ErrorMessage(err), "problems": ps}})
			return
		}
		s.writeError(w, r, err)
		return
	}
	out := wire.VersionInfo{ID: v.ID, Version: v.Version, SHA256: v.SHA256, Status: v.Status, Passed: v.Report.Passed}
	if in.Submit && v.Status == marketplace.StatusChecked {
		if err := s.cfg.Market.SubmitVersion(r.Context(), by, v.ID); err != nil {
			s.writeError(w, r, err)
			return
		}
		out.Status, out.Submitted = marketplace.StatusInReview, true
	}
	writeJSON(w, http.StatusCreated, out)
}

func toPayment(in payment.Intent, c *Caller) wire.Payment {
	return wire.Payment{ID: in.ID, Key: in.Key, User: in.User, Payee: in.Payee, Amount: in.Amount, Description: in.Description,
		State: string(in.State), Method: in.Method, Refunded: in.Refunded, Failure: in.Failure,
		ConfirmURL: payment.ConfirmPath(in.ID), CreatedAt: in.CreatedAt, ExpiresAt: in.ExpiresAt, Replayed: in.Replayed,
		Sandbox: c.Sandbox()}
}

func (s *Server) payments(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Payments == nil {
		s.writeError(w, r, jifu.Errorf(jifu.CodeUnavailable, "openapi: payments are not available on this server"))
		return false
	}
	return true
}

func (s *Server) createPayment(w http.ResponseWriter, r *http.Request) {
	if !s.payments(w, r) {
		return
	}
	c := caller(r)
	var in wire.PaymentRequest
	if err := decode(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, ok := marketplace.ParseUserRef(in.User); !ok {
		s.writeError(w, r, jifu.Errorf(jifu.CodeInvalid, "openapi: user %q is not a user's open id", in.User))
		return
	}
	pi, err := s.cfg.Payments.Create(r.Context(), payment.CreateRequest{App: c.Namespace(), User: in.User, Payee: in.Payee,
		Amount: in.Amount, Description: in.Description, Key: in.Key})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st := http.StatusCreated
	if pi.Replayed {
		st = http.StatusOK
	}
	writeJSON(w, st, toPayment(pi, c))
}

func (s *Server) getPayment(w http.ResponseWriter, r *http.Request) {
	if !s.payments(w, r) {
		return
	}
	c := caller(r)
	pi, err := s.cfg.Payments.Get(r.Context(), c.Namespace(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPayment(pi, c))
}

func toRefund(rf payment.Refund) wire.Refund {
	return wire.Refund{ID: rf.ID, PaymentID: rf.IntentID, Key: rf.Key, Amount: rf.Amount, Refunded: rf.Refunded, State: rf.State,
		Failure: rf.Failure, CreatedAt: rf.CreatedAt, Replayed: rf.Replayed}
}

func (s *Server) refund(w http.ResponseWriter, r *http.Request) {
	if !s.payments(w, r) {
		return
	}
	c := caller(r)
	var in wire.RefundRequest
	if err := decode(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	rf, err := s.cfg.Payments.Refund(r.Context(), c.Namespace(), payment.RefundRequest{IntentID: chi.URLParam(r, "id"), Key: in.Key, Amount: in.Amount})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st := http.StatusCreated
	if rf.Replayed {
		st = http.StatusOK
	}
	writeJSON(w, st, toRefund(rf))
}

func (s *Server) listRefunds(w http.ResponseWriter, r *http.Request) {
	if !s.payments(w, r) {
		return
	}
	c := caller(r)
	id := chi.URLParam(r, "id")
	if _, err := s.cfg.Payments.Get(r.Context(), c.Namespace(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	rs, err := s.cfg.Payments.Refunds(r.Context(), c.Namespace(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := []wire.Refund{}
	for _, rf := range rs {
		out = append(out, toRefund(rf))
	}
	writeJSON(w, http.StatusOK, map[string]any{"refunds": out})
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Server) deliveries(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Deliveries == nil {
		s.writeError(w, r, jifu.Errorf(jifu.CodeUnavailable, "openapi: callbacks are not available on this server"))
		return false
	}
	return true
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	if !s.deliveries(w, r) {
		return
	}
	q := r.URL.Query()
	f := outbox.ListFilter{App: caller(r).Namespace(), State: q.Get("state"), Sink: q.Get("sink")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			s.writeError(w, r, jifu.Errorf(jifu.CodeInvalid, "openapi: limit must be 1..500"))
			return
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.writeError(w, r, jifu.Errorf(jifu.CodeInvalid, "openapi: before must be an RFC 3339 time"))
			return
		}
		f.Before = t
	}
	ds, err := s.cfg.Deliveries.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := []wire.Delivery{}
	for _, d := range ds {
		out = append(out, wire.Delivery{EventID: d.EventID, Sink: d.Sink, Type: d.Type, State: d.State, Attempts: d.Attempts,
			LastStatus: d.LastStatus, LastError: d.LastError, LastAttemptAt: timePtr(d.LastAttemptAt),
			DeliveredAt: timePtr(d.DeliveredAt), CreatedAt: d.CreatedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	if !s.deliveries(w, r) {
		return
	}
	sink := r.URL.Query().Get("sink")
	if sink == "" {
		sink = callback.SinkWebhook
	}
	if sink != callback.SinkWebhook && sink != callback.SinkOnEvent {
		s.writeError(w, r, jifu.Errorf(jifu.CodeInvalid, "openapi: sink must be %s or %s", callback.SinkWebhook, callback.SinkOnEvent))
		return
	}
	ev := chi.URLParam(r, "event")
	if err := s.cfg.Deliveries.Replay(r.Context(), caller(r).Namespace(), ev, sink); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"event_id": ev, "sink": sink, "state": outbox.StatePending})
}

// MaskPhone keeps the first 3 and last 4 digits of a mobile number.
func MaskPhone(p string) string {
	if len(p) < 7 {
		return strings.Repeat("*", len(p))
	}
	return p[:3] + strings.Repeat("*", len(p)-7) + p[len(p)-4:]
}

// MaskName keeps the first character of a name.
func MaskName(n string) string {
	rs := []rune(n)
	if len(rs) == 0 {
		return ""
	}
	return string(rs[0]) + strings.Repeat("*", len(rs)-1)
}

// AccessTokenHeader carries the user's OAuth access token on
// GET /openapi/v1/user (Authorization holds the request's signature).
const AccessTokenHeader = "Jifu-Access-Token"

func (s *Server) userInfo(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	tok, err := s.oauth.introspect(r.Context(), r.Header.Get(AccessTokenHeader), c.Key.AppKey)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, ok := marketplace.ParseUserRef(tok.subject)
	if !ok {
		s.writeError(w, r, jifu.Errorf(CodeTokenInvalid, "openapi: the token has no store user"))
		return
	}
	u, err := s.cfg.Market.User(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !slices.ContainsFunc(tok.scopes, func(sc string) bool { return slices.Contains(OAuthScopes, sc) }) {
		s.writeError(w, r, jifu.Errorf(CodeScopeMissing, "openapi: the access token holds none of the scopes %s", strings.Join(OAuthScopes, ", ")))
		return
	}
	out := wire.UserInfo{OpenID: tok.subject, Scopes: tok.scopes}
	for _, sc := range tok.scopes {
		switch sc {
		case "user.basic":
			out.Phone, out.Region, out.Level = MaskPhone(u.Phone), u.Region, u.Level
		case "user.realname":
			out.RealName, out.IDNumber, out.Verified = MaskName(u.RealName), u.IDNumberMasked, u.VerifiedAt != nil
		}
	}
	writeJSON(w, http.StatusOK, out)
}
