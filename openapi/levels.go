package openapi

import (
	"math"
	"strconv"
	"strings"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ratelimit"
	"github.com/jifu-open/jifu/marketplace"
)

// ParseLevels reads rate limits per service level from text such as
// "basic=5/10,standard=20/40": each level's sustained calls a second and
// burst. Levels not named keep DefaultLevels. Unknown levels, non-positive
// or non-finite rates, and bursts below 1 are CodeInvalid.
func ParseLevels(s string) (map[string]ratelimit.Level, error) {
	out := DefaultLevels()
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, spec, ok := strings.Cut(strings.TrimSpace(part), "=")
		rate, burst, ok2 := strings.Cut(spec, "/")
		if !ok || !ok2 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "openapi: rate %q is not level=rate/burst", truncate(part, 40))
		}
		if _, known := marketplace.Level(name); !known {
			return nil, jifu.Errorf(jifu.CodeInvalid, "openapi: unknown service level %q", truncate(name, 20))
		}
		r, err := strconv.ParseFloat(rate, 64)
		if err != nil || !(r > 0) || math.IsInf(r, 0) || r > 1e6 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "openapi: level %s: rate must be a positive number of calls a second", name)
		}
		b, err := strconv.Atoi(burst)
		if err != nil || b < 1 || b > 1e6 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "openapi: level %s: burst must be 1..1000000", name)
		}
		out[name] = ratelimit.Level{Rate: r, Burst: b}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
