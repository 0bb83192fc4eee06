package marketplace

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
)

// ServingOptions tune a Serving.
type ServingOptions struct {
	// RouteTTL is how long an app's release state is used before it is
	// refreshed in the background (changes made through this process's
	// Service apply at once). Default 2 s.
	RouteTTL time.Duration
	// ProfileTTL is how long a user's level, channel and region are cached
	// for segment matching. Default 30 s.
	ProfileTTL time.Duration
	// IdleUnload closes a loaded version no release has used for this
	// long. Default 1 min.
	IdleUnload time.Duration
	// Config returns an app's operator configuration (may be nil).
	Config func(ctx context.Context, slug string) (map[string]string, error)
}

// Serving picks, per request, the app version that serves a user through
// the marketplace's releases (segment, gray percentage, sticky buckets),
// with the release state, user profiles and loaded versions cached so the
// per-request cost is a few map lookups and one hash. It is safe for
// concurrent use.
type Serving struct {
	svc  *Service
	host *host.Host
	opt  ServingOptions

	routes   sync.Map // slug → *route
	profiles sync.Map // user → *profileEntry

	mu       sync.RWMutex // guards loaded and loading
	loaded   map[int64]*loadedVersion
	loading  map[int64]*sync.Mutex
	profileN atomic.Int64
}

type route struct {
	appID      int64
	slug       string
	full, gray *Release
	err        error // CodeNotFound for an unknown slug (cached too)
	at         time.Time
	refreshing atomic.Bool
}

type profileEntry struct {
	p  Profile
	at time.Time
}

type loadedVersion struct {
	app      *host.App
	lastUsed atomic.Int64 // unix nanos
}

// NewServing returns the resolver over svc's releases, loading versions
// into h. It hooks into svc so release changes apply at once.
func NewServing(svc *Service, h *host.Host, opt ServingOptions) *Serving {
	if opt.RouteTTL <= 0 {
		opt.RouteTTL = 2 * time.Second
	}
	if opt.ProfileTTL <= 0 {
		opt.ProfileTTL = 30 * time.Second
	}
	if opt.IdleUnload <= 0 {
		opt.IdleUnload = time.Minute
	}
	s := &Serving{svc: svc, host: h, opt: opt, loaded: map[int64]*loadedVersion{}, loading: map[int64]*sync.Mutex{}}
	svc.changed = s.Invalidate
	return s
}

// Invalidate drops the cached release state of slug; the next request
// reads it anew.
func (s *Serving) Invalidate(slug string) { s.routes.Delete(slug) }

// Stage and version of a resolved request, for the caller's records.
type Resolved struct {
	App       *host.App
	AppID     int64
	VersionID int64
	Stage     string
}

// Resolve returns the app version that serves user (a UserRef, or "" for an
// anonymous visitor, who gets the stable version) for slug, and a done
// function to call with the response status and error once the request is
// over (it records the statistics). CodeNotFound when there is no such app
// or nothing of it is released to the user.
func (s *Serving) Resolve(ctx context.Context, slug, user string) (*host.App, func(status int, err error), error) {
	r, err := s.Route(ctx, slug, user)
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	done := func(status int, err error) {
		s.svc.RecordInvocation(r.AppID, r.VersionID, r.Stage, user, time.Since(start), err != nil || status >= 500)
	}
	return r.App, done, nil
}

// Route is Resolve without the statistics hook.
func (s *Serving) Route(ctx context.Context, slug, user string) (*Resolved, error) {
	rt, err := s.route(ctx, slug)
	if err != nil {
		return nil, err
	}
	var p Profile
	if g := rt.gray; g != nil && user != "" && len(g.Segment.Levels)+len(g.Segment.Channels)+len(g.Segment.Regions) > 0 {
		if p, err = s.profile(ctx, user); err != nil {
			return nil, err
		}
	}
	rel := rt.full
	if user != "" {
		rel = Choose(rt.full, rt.gray, user, p)
	}
	if rel == nil {
		return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: app %q is not available", slug)
	}
	app, err := s.load(ctx, rel.VersionID)
	if err != nil {
		return nil, err
	}
	return &Resolved{App: app, AppID: rt.appID, VersionID: rel.VersionID, Stage: rel.Stage}, nil
}

func (s *Serving) route(ctx context.Context, slug string) (*route, error) {
	if v, ok := s.routes.Load(slug); ok {
		rt := v.(*route)
		if time.Since(rt.at) > s.opt.RouteTTL && rt.refreshing.CompareAndSwap(false, true) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if nrt := s.readRoute(ctx, slug); nrt != nil {
					s.routes.CompareAndSwap(slug, rt, nrt)
				} else {
					rt.refreshing.Store(false)
				}
				s.unloadIdle()
			}()
		}
		return rt, rt.err
	}
	rt := s.readRoute(ctx, slug)
	if rt == nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "marketplace: cannot read the releases of %q", slug)
	}
	s.routes.Store(slug, rt)
	return rt, rt.err
}

// readRoute reads slug's release state; nil when the database failed (the
// caller keeps what it has).
func (s *Serving) readRoute(ctx context.Context, slug string) *route {
	rt := &route{slug: slug, at: time.Now()}
	app, err := s.svc.appWhere(ctx, `slug = $1`, slug)
	if jifu.ErrorCode(err) == jifu.CodeNotFound {
		rt.err = jifu.Errorf(jifu.CodeNotFound, "marketplace: no app %q", slug)
		return rt
	}
	if err != nil {
		s.svc.log.WarnContext(ctx, "marketplace: reading an app failed", "app", slug, "err", err)
		return nil
	}
	rt.appID = app.ID
	if rt.full, rt.gray, err = s.svc.activeReleases(ctx, app.ID); err != nil {
		s.svc.log.WarnContext(ctx, "marketplace: reading releases failed", "app", slug, "err", err)
		return nil
	}
	return rt
}

func (s *Serving) profile(ctx context.Context, user string) (Profile, error) {
	if v, ok := s.profiles.Load(user); ok {
		e := v.(*profileEntry)
		if time.Since(e.at) < s.opt.ProfileTTL {
			return e.p, nil
		}
	}
	p, err := s.svc.UserProfile(ctx, user)
	if err != nil {
		return Profile{}, err
	}
	if s.profileN.Add(1) > 100000 { // bound the cache: start over
		s.profiles.Clear()
		s.profileN.Store(0)
	}
	s.profiles.Store(user, &profileEntry{p: p, at: time.Now()})
	return p, nil
}

// load returns the loaded host.App of an approved version, loading it once.
func (s *Serving) load(ctx context.Context, versionID int64) (*host.App, error) {
	s.mu.RLock()
	lv := s.loaded[versionID]
	s.mu.RUnlock()
	if lv != nil {
		lv.lastUsed.Store(time.Now().UnixNano())
		return lv.app, nil
	}
	s.mu.Lock()
	l := s.loading[versionID]
	if l == nil {
		l = &sync.Mutex{}
		s.loading[versionID] = l
	}
	s.mu.Unlock()

	l.Lock()
	defer l.Unlock()
	s.mu.RLock()
	lv = s.loaded[versionID]
	s.mu.RUnlock()
	if lv != nil {
		return lv.app, nil
	}
	vs, err := s.svc.versions(ctx, `v.id = $1`, versionID)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 || vs[0].Status != StatusApproved {
		// Releases only ever name approved versions; refuse anything else.
		return nil, jifu.Errorf(jifu.CodeNotFound, "marketplace: version %d is not approved", versionID)
	}
	v := vs[0]
	wasm, err := s.svc.cfg.Artifacts.Get(ctx, v.SHA256)
	if err != nil {
		return nil, err
	}
	var cfg map[string]string
	if s.opt.Config != nil {
		if cfg, err = s.opt.Config(ctx, v.Slug); err != nil {
			return nil, err
		}
	}
	app, err := s.host.Load(ctx, host.AppSpec{Slug: v.Slug, Wasm: wasm, Manifest: v.Manifest, Config: cfg})
	if err != nil {
		return nil, err
	}
	lv = &loadedVersion{app: app}
	lv.lastUsed.Store(time.Now().UnixNano())
	s.mu.Lock()
	s.loaded[versionID] = lv
	delete(s.loading, versionID)
	s.mu.Unlock()
	s.svc.log.InfoContext(ctx, "app version loaded", "app", v.Slug, "version", v.Version, "version_id", v.ID)
	return app, nil
}

// Preload loads every version an active release names, so first requests
// do not wait for a load.
func (s *Serving) Preload(ctx context.Context) error {
	rows, err := s.svc.pool.Query(ctx, `SELECT DISTINCT version_id FROM mp_releases WHERE stage IN ('full', 'gray')`)
	if err != nil {
		return s.svc.dbErr(ctx, "preload", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return s.svc.dbErr(ctx, "preload", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if _, err := s.load(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// unloadIdle closes loaded versions that no cached route names and that no
// request used for IdleUnload.
func (s *Serving) unloadIdle() {
	inUse := map[int64]bool{}
	s.routes.Range(func(_, v any) bool {
		rt := v.(*route)
		for _, r := range []*Release{rt.full, rt.gray} {
			if r != nil {
				inUse[r.VersionID] = true
			}
		}
		return true
	})
	cutoff := time.Now().Add(-s.opt.IdleUnload).UnixNano()
	var closing []*host.App
	s.mu.Lock()
	for id, lv := range s.loaded {
		if !inUse[id] && lv.lastUsed.Load() < cutoff {
			closing = append(closing, lv.app)
			delete(s.loaded, id)
		}
	}
	s.mu.Unlock()
	for _, a := range closing {
		_ = a.Close(context.Background())
	}
}

// Close closes every loaded version.
func (s *Serving) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, lv := range s.loaded {
		_ = lv.app.Close(ctx)
		delete(s.loaded, id)
	}
	return nil
}
