// Package review is the reviewers' pages: the queue of submitted versions,
// each version's automated check report and its capability diff (imports,
// scopes and limits against the previous approved version), and the
// approve/reject decision with a comment for the developer. Only reviewers
// and admins decide (the marketplace enforces and audits it). Mounted at
// /review; staff log in at /portal/login.
//
//	r.Mount("/review", review.New(review.Deps{Market: svc}))
package review

import (
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/portal"
	"github.com/jifu-open/jifu/web/respond"
	"github.com/jifu-open/jifu/web/session"
)

// Deps are the reviewer pages' dependencies.
type Deps struct {
	Market *marketplace.Service
	Logger *slog.Logger
	Outbox bool // the local SMS outbox is in use: point to it
}

type handler struct{ Deps }

// New returns the reviewer pages' handler, to be mounted at /review behind
// the session middleware.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{Deps: d}
	r := chi.NewRouter()
	r.Use(portal.CSRF(d.Logger, d.Outbox, 64<<10))
	r.Get("/", h.queue)
	r.Get("/versions/{id}", h.version)
	r.Post("/versions/{id}/decide", h.decide)
	return r
}

func (h *handler) page(r *http.Request, title string) layout.Page {
	p := portal.StaffPage(r, layout.AreaReview, title, h.Outbox)
	if r.URL.Query().Get("done") == "approved" {
		p.Flash = "Approved."
	} else if r.URL.Query().Get("done") == "rejected" {
		p.Flash = "Rejected; the developer sees your comment."
	}
	return p
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	respond.Error(w, r, h.Logger, h.page(r, "Error"), err, "/review/", "Back to the queue")
}

// reviewer returns the logged-in staff actor; it sends a visitor to the
// login page. Whether the actor may review is the marketplace's decision.
func (h *handler) reviewer(w http.ResponseWriter, r *http.Request) (marketplace.Actor, bool) {
	s, ok := session.Staff(r)
	if ok {
		return s.Actor, true
	}
	if r.Method == http.MethodGet {
		respond.Redirect(w, r, "/portal/login?next="+url.QueryEscape(r.URL.RequestURI()))
	} else {
		h.fail(w, r, jifu.Errorf(jifu.CodeDenied, "please log in first"))
	}
	return marketplace.Actor{}, false
}

func (h *handler) queue(w http.ResponseWriter, r *http.Request) {
	a, ok := h.reviewer(w, r)
	if !ok {
		return
	}
	vs, err := h.Market.ReviewQueue(r.Context(), a)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Queue(QueueView{Page: h.page(r, "Review queue"), Versions: vs}))
}

func versionID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, jifu.Errorf(jifu.CodeNotFound, "no such version")
	}
	return id, nil
}

func (h *handler) version(w http.ResponseWriter, r *http.Request) {
	a, ok := h.reviewer(w, r)
	if !ok {
		return
	}
	if !a.Is(marketplace.RoleReviewer, marketplace.RoleAdmin) {
		h.fail(w, r, jifu.Errorf(jifu.CodeDenied, "only reviewers see the review pages"))
		return
	}
	id, err := versionID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rv, err := h.Market.Review(r.Context(), a, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, portal.Version(portal.VersionView{Page: h.page(r, "Review "+rv.App.Name+" "+rv.Version.Version),
		Review: rv, Reviewer: true}))
}

func (h *handler) decide(w http.ResponseWriter, r *http.Request) {
	a, ok := h.reviewer(w, r)
	if !ok {
		return
	}
	id, err := versionID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	comment := r.PostFormValue("comment")
	done := ""
	switch r.PostFormValue("decision") {
	case "approve":
		// The production credential an approval may issue is the
		// developer's: it is not shown to the reviewer (the developer
		// rotates it to see a secret).
		_, err = h.Market.Approve(r.Context(), a, id, comment)
		done = "approved"
	case "reject":
		err = h.Market.Reject(r.Context(), a, id, comment)
		done = "rejected"
	default:
		err = jifu.Errorf(jifu.CodeInvalid, "choose approve or reject")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Redirect(w, r, "/review/?done="+done)
}
