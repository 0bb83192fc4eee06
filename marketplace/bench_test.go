package marketplace_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jifu-open/jifu/marketplace"
)

// BenchmarkResolve measures the per-request cost of picking a user's
// version through the releases (cached state, sticky hash, loaded app) and
// recording the request's statistics: the work /apps/{slug}/ adds to an
// invocation. Plain: a full and a 10% gray release; Segment: the gray
// release targets user levels, so each request also reads the cached
// profile.
func BenchmarkResolve(b *testing.B) {
	for _, tc := range []struct {
		name string
		seg  marketplace.Segment
	}{{"plain", marketplace.Segment{}}, {"segment", marketplace.Segment{Levels: []int{101, 201}}}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			e := newBenchEnv(b)
			app, _ := e.newApp(e.dev)
			v1 := e.approved(e.dev, app, "1.0.0")
			if _, err := e.svc.StartRelease(ctx, e.dev, v1.ID, marketplace.ReleasePlan{Percent: 100}); err != nil {
				b.Fatal(err)
			}
			v2 := e.approved(e.dev, app, "2.0.0")
			if _, err := e.svc.StartRelease(ctx, e.dev, v2.ID, marketplace.ReleasePlan{Percent: 10, Segment: tc.seg}); err != nil {
				b.Fatal(err)
			}
			srv := marketplace.NewServing(e.svc, e.host, marketplace.ServingOptions{RouteTTL: time.Hour, ProfileTTL: time.Hour})
			defer srv.Close(ctx)
			users := make([]string, 1024)
			for i := range users {
				users[i] = "u" + strconv.Itoa(i+1)
				if _, _, err := srv.Resolve(ctx, app.Slug, users[i]); err != nil { // warm caches and load both versions
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				_, done, err := srv.Resolve(ctx, app.Slug, users[i&1023])
				if err != nil {
					b.Fatal(err)
				}
				done(200, nil)
				i++
			}
		})
	}
}
