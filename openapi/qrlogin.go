package openapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/jifu-open/jifu"
)

// DefaultQRLifespan is how long a login QR code waits for approval.
const DefaultQRLifespan = 2 * time.Minute

// qrLogin is the QR-code login (扫码登陆): the waiting page shows a QR code
// of an approval link; a store session that is already logged in (the
// phone) opens it and approves; the waiting page polls and, once approved,
// receives a session of its own, exactly once. Codes expire.
type qrLogin struct {
	s    *Server
	life time.Duration
}

func newQRLogin(s *Server) *qrLogin {
	life := s.cfg.QRLifespan
	if life <= 0 {
		life = DefaultQRLifespan
	}
	return &qrLogin{s: s, life: life}
}

func (q *qrLogin) routes(r chi.Router) {
	r.Get("/login/qr", q.start)
	r.Get("/login/qr/{id}", q.confirmPage)
	r.Post("/login/qr/{id}", q.decide)
	r.Get("/login/qr/{id}/status", q.status)
}

const qrCookie = "jifu_qr"

// safeNext keeps only same-site paths as the place to go after login.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

var waitTmpl = template.Must(template.New("wait").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>扫码登陆 · Jifu</title>
<style>body{font-family:system-ui,sans-serif;text-align:center;margin-top:3rem}</style></head>
<body><h1>扫码登陆</h1><p>Scan with the Jifu app where you are logged in, then approve.</p>
<img data-testid="qr" alt="QR code" width="256" height="256" src="data:image/png;base64,{{.PNG}}">
<p><a data-testid="qr-link" href="{{.Link}}">{{.Link}}</a></p>
<p data-testid="qr-state">waiting</p>
<script>
(function(){
  var state = document.querySelector('[data-testid=qr-state]');
  function poll(){
    fetch({{.Status}}, {credentials: 'same-origin', cache: 'no-store'}).then(function(r){ return r.json(); }).then(function(b){
      state.textContent = b.state;
      if (b.state === 'approved') { location.href = b.next; return; }
      if (b.state === 'pending') { setTimeout(poll, 1000); }
    }).catch(function(){ setTimeout(poll, 2000); });
  }
  poll();
})();
</script></body></html>`))

// start creates a login code and shows its QR code.
func (q *qrLogin) start(w http.ResponseWriter, r *http.Request) {
	id, secret := randomHex(16), randomHex(32)
	next := safeNext(r.URL.Query().Get("next"))
	_, err := q.s.cfg.Pool.Exec(r.Context(), `INSERT INTO oauth_qr_logins (id, poll_hash, expires_at) VALUES ($1, $2, $3)`,
		id, hashOf(secret+"\n"+next), q.s.now().Add(q.life))
	if err != nil {
		q.s.writeError(w, r, jifu.Errorf(jifu.CodeUnavailable, "qr login: %w", err))
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	link := scheme + "://" + r.Host + "/login/qr/" + id
	png, err := qrcode.Encode(link, qrcode.Medium, 256)
	if err != nil {
		q.s.writeError(w, r, jifu.Errorf(jifu.CodeInternal, "qr login: encode: %w", err))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: qrCookie, Value: secret + "." + base64.RawURLEncoding.EncodeToString([]byte(next)),
		Path: "/login/qr/" + id, HttpOnly: true, Secure: q.s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode,
		MaxAge: int(q.life.Seconds()) + 60})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	_ = waitTmpl.Execute(w, map[string]any{"PNG": base64.StdEncoding.EncodeToString(png), "Link": link,
		"Status": "/login/qr/" + id + "/status"})
}

type qrRow struct {
	state   string
	userID  *int64
	hash    []byte
	expires time.Time
}

func (q *qrLogin) load(r *http.Request, tx pgx.Tx, id string) (*qrRow, error) {
	var row qrRow
	qq := `SELECT state, user_id, poll_hash, expires_at FROM oauth_qr_logins WHERE id = $1`
	var err error
	if tx != nil {
		err = tx.QueryRow(r.Context(), qq+` FOR UPDATE`, id).Scan(&row.state, &row.userID, &row.hash, &row.expires)
	} else {
		err = q.s.cfg.Pool.QueryRow(r.Context(), qq, id).Scan(&row.state, &row.userID, &row.hash, &row.expires)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, jifu.Errorf(jifu.CodeNotFound, "qr login: no such code")
	}
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "qr login: %w", err)
	}
	return &row, nil
}

var confirmTmpl = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Approve login · Jifu</title></head>
<body><h1>Approve login</h1>
{{if .Message}}<p data-testid="qr-message">{{.Message}}</p>{{else}}
<p>Log in to Jifu on the other device?</p>
<form method="post"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button data-testid="qr-approve" name="decision" value="approve">Approve</button>
<button data-testid="qr-deny" name="decision" value="deny">Deny</button></form>{{end}}
</body></html>`))

func renderConfirm(w http.ResponseWriter, status int, csrf, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = confirmTmpl.Execute(w, map[string]string{"CSRF": csrf, "Message": msg})
}

// confirmPage is what the QR code links to: the logged-in store session
// approves or denies.
func (q *qrLogin) confirmPage(w http.ResponseWriter, r *http.Request) {
	sess := q.s.session(r)
	if sess == nil {
		renderConfirm(w, http.StatusUnauthorized, "", "Log in to the store on this device first.")
		return
	}
	row, err := q.load(r, nil, chi.URLParam(r, "id"))
	switch {
	case err != nil:
		renderConfirm(w, http.StatusNotFound, "", "This code is unknown.")
	case row.state != "pending" || !q.s.now().Before(row.expires):
		renderConfirm(w, http.StatusGone, "", "This code expired or was already used.")
	default:
		renderConfirm(w, http.StatusOK, sess.CSRF, "")
	}
}

func (q *qrLogin) decide(w http.ResponseWriter, r *http.Request) {
	sess := q.s.session(r)
	if sess == nil {
		renderConfirm(w, http.StatusUnauthorized, "", "Log in to the store on this device first.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRF)) != 1 {
		renderConfirm(w, http.StatusForbidden, "", "The form is stale; scan the code again.")
		return
	}
	state := "denied"
	if r.PostFormValue("decision") == "approve" {
		state = "approved"
	}
	tag, err := q.s.cfg.Pool.Exec(r.Context(), `UPDATE oauth_qr_logins SET state = $2, user_id = $3
		WHERE id = $1 AND state = 'pending' AND expires_at > $4`, chi.URLParam(r, "id"), state, sess.UserID, q.s.now())
	if err != nil {
		renderConfirm(w, http.StatusServiceUnavailable, "", "Try again later.")
		return
	}
	if tag.RowsAffected() == 0 {
		renderConfirm(w, http.StatusGone, "", "This code expired or was already used.")
		return
	}
	if state == "approved" {
		renderConfirm(w, http.StatusOK, "", "Approved: the other device is logged in.")
		return
	}
	renderConfirm(w, http.StatusOK, "", "Denied.")
}

// QRStatus is the answer of GET /login/qr/{id}/status: pending, approved
// (the response sets the session cookie; Next says where to go), denied,
// expired.
type QRStatus struct {
	State string `json:"state"`
	Next  string `json:"next,omitempty"`
}

// status is polled by the waiting page, which alone holds the code's
// cookie. An approved code is claimed once: the answer carries a new
// store session.
func (q *qrLogin) status(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	c, err := r.Cookie(qrCookie)
	if err != nil {
		q.s.writeError(w, r, jifu.Errorf(jifu.CodeDenied, "qr login: only the waiting page may poll"))
		return
	}
	secret, enc, _ := strings.Cut(c.Value, ".")
	nb, _ := base64.RawURLEncoding.DecodeString(enc)
	next := safeNext(string(nb))
	var out QRStatus
	var token string
	err = pgx.BeginFunc(r.Context(), q.s.cfg.Pool, func(tx pgx.Tx) error {
		row, err := q.load(r, tx, id)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(row.hash, hashOf(secret+"\n"+next)) != 1 {
			return jifu.Errorf(jifu.CodeDenied, "qr login: only the waiting page may poll")
		}
		switch {
		case row.state == "claimed":
			out.State = "claimed"
		case row.state == "denied":
			out.State = "denied"
		case row.state == "pending" && !q.s.now().Before(row.expires):
			out.State = "expired"
		case row.state == "pending":
			out.State = "pending"
		case row.state == "approved":
			if _, err := tx.Exec(r.Context(), `UPDATE oauth_qr_logins SET state = 'claimed' WHERE id = $1`, id); err != nil {
				return err
			}
			tok, _, err := q.s.cfg.Market.OpenUserSession(r.Context(), *row.userID)
			if err != nil {
				return err
			}
			token, out.State, out.Next = tok, "approved", next
		}
		return nil
	})
	if err != nil {
		q.s.writeError(w, r, err)
		return
	}
	if token != "" {
		http.SetCookie(w, &http.Cookie{Name: q.s.cfg.SessionCookie, Value: token, Path: "/", HttpOnly: true,
			Secure: q.s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
	}
	writeJSON(w, http.StatusOK, out)
}
