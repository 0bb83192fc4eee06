package portal

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/respond"
)

// AccountView is a developer's account: its kind, status and service level,
// with the form to apply for another level.
type AccountView struct {
	Page      layout.Page
	Developer *marketplace.Developer
	Levels    []marketplace.ServiceLevel
}

// DevelopersView lists developers for staff; admins decide applications.
type DevelopersView struct {
	Page       layout.Page
	Developers []*marketplace.Developer
	Admin      bool
}

// UsersView lists store users for risk staff and admins.
type UsersView struct {
	Page  layout.Page
	Users []*marketplace.User
}

// MaskPhone shows a mobile number as 138****8000.
func MaskPhone(p string) string {
	if len(p) != 11 {
		return p
	}
	return p[:3] + "****" + p[7:]
}

func (h *handler) account(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	if a.Role != marketplace.RoleDeveloper {
		h.fail(w, r, jifu.Errorf(jifu.CodeNotFound, "only developers have a developer account"))
		return
	}
	d, err := h.Market.Developer(r.Context(), a, a.DeveloperID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Account(AccountView{Page: h.page(r, "Account"), Developer: d, Levels: marketplace.ServiceLevels}))
}

func (h *handler) applyLevel(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	if err := h.Market.ApplyForLevel(r.Context(), a, r.PostFormValue("level")); err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Redirect(w, r, "/portal/account?done=applied")
}

func (h *handler) developers(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	status := r.URL.Query().Get("status")
	ds, err := h.Market.Developers(r.Context(), a, status)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Developers(DevelopersView{Page: h.page(r, "Developers"), Developers: ds, Admin: a.Is(marketplace.RoleAdmin)}))
}

func (h *handler) decideDeveloper(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var approve bool
	switch r.PostFormValue("decision") {
	case "approve":
		approve = true
	case "reject":
	default:
		h.fail(w, r, jifu.Errorf(jifu.CodeInvalid, "choose approve or reject"))
		return
	}
	if err := h.Market.DecideDeveloper(r.Context(), a, id, approve, strings.TrimSpace(r.PostFormValue("comment"))); err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Redirect(w, r, "/portal/developers?done=decided")
}

func (h *handler) users(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	us, err := h.Market.Users(r.Context(), a, 200)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Users(UsersView{Page: h.page(r, "Users"), Users: us}))
}

func (h *handler) updateUser(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var up marketplace.UserUpdate
	level, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("level")))
	if err != nil {
		h.fail(w, r, jifu.Errorf(jifu.CodeInvalid, "the level must be a number such as 101 or 201"))
		return
	}
	channel, region := strings.TrimSpace(r.PostFormValue("channel")), strings.TrimSpace(r.PostFormValue("region"))
	up.Level, up.Channel, up.Region = &level, &channel, &region
	if err := h.Market.UpdateUser(r.Context(), a, id, up); err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Redirect(w, r, "/portal/users?done=user")
}
