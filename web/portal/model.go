package portal

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
)

// RegisterView is the developer sign-up form.
type RegisterView struct {
	Page   layout.Page
	Form   marketplace.Registration
	Kinds  []marketplace.DeveloperKind
	Levels []marketplace.ServiceLevel
}

// LoginView is the staff login form.
type LoginView struct {
	Page  layout.Page
	Email string
	Next  string
}

// AppsView lists a developer's apps.
type AppsView struct {
	Page layout.Page
	Apps []*marketplace.App
}

// AppForm is the app form's fields as typed.
type AppForm struct {
	marketplace.AppInput
	Whitelist string // one CIDR or address per line or comma
}

// NewAppView is the create-app form.
type NewAppView struct {
	Page       layout.Page
	Form       AppForm
	Categories []string
}

// CredentialView shows a new secret: the only time it is ever shown.
type CredentialView struct {
	Page layout.Page
	App  *marketplace.App
	Cred *marketplace.Credential
}

// AppView is an app's console: details, keys, versions, releases.
type AppView struct {
	Page     layout.Page
	App      *marketplace.App
	Keys     []marketplace.KeyMeta
	Versions []*marketplace.Version
	Full     *marketplace.Release
	Gray     *marketplace.Release
	Releases []*marketplace.Release
	// Health is each version's figures per stage since the gray release
	// started (the last day without one): what the automatic rollback
	// compares.
	Health []marketplace.StageStats
}

// Releasable lists the approved versions that may start a release now.
func (v AppView) Releasable() []*marketplace.Version {
	if v.Gray != nil {
		return nil
	}
	var out []*marketplace.Version
	for _, x := range v.Versions {
		if x.Status == marketplace.StatusApproved && (v.Full == nil || v.Full.VersionID != x.ID) {
			out = append(out, x)
		}
	}
	return out
}

// HasProduction reports whether the app has a production credential.
func (v AppView) HasProduction() bool {
	for _, k := range v.Keys {
		if k.Env == marketplace.EnvProduction {
			return true
		}
	}
	return false
}

// UploadRefusedView explains why an upload was not stored.
type UploadRefusedView struct {
	Page     layout.Page
	App      *marketplace.App
	Status   int
	Code     string
	Message  string
	Problems []manifest.Problem
}

// VersionView is a version's page: its check report, the review's outcome
// and, for reviewers, the capability diff and the decision form.
type VersionView struct {
	Page     layout.Page
	Review   *marketplace.Review
	Reviewer bool // the viewer may approve or reject
	Owner    bool // the viewer is the app's developer
}

// StatsView is an app's statistics (统计BI) with charts.
type StatsView struct {
	Page   layout.Page
	App    *marketplace.App
	Stats  *marketplace.AppStats
	Days   int
	Charts []Chart
}

// OutboxView is the local SMS channel's outbox (dev mode).
type OutboxView struct {
	Page    layout.Page
	To      string
	Entries []notify.Entry
}

// AuditView is the audit log of staff actions.
type AuditView struct {
	Page    layout.Page
	Target  string
	Entries []marketplace.AuditEntry
}

// Chart is a bar chart laid out for SVG: one bar per day.
type Chart struct {
	Title, TestID string
	Width, Height int
	Max           int64
	Bars          []Bar
	Class         string // bar color class
}

// Bar is one laid-out bar.
type Bar struct {
	X, Y, W, H int
	Value      int64
	Label      string // the day, for the tooltip and the axis
	ShowLabel  bool
}

// Chart geometry.
const (
	chartW, chartH = 640, 180
	chartPad       = 24
)

// NewChart lays out values (one per label) as bars scaled to the maximum.
func NewChart(title, testID, class string, labels []string, values []int64) Chart {
	c := Chart{Title: title, TestID: testID, Width: chartW, Height: chartH, Class: class}
	for _, v := range values {
		c.Max = max(c.Max, v)
	}
	n := len(values)
	if n == 0 {
		return c
	}
	slot := (chartW - 2*chartPad) / n
	bw := max(slot*3/4, 1)
	inner := chartH - 2*chartPad
	every := max(n/8, 1)
	for i, v := range values {
		h := 0
		if c.Max > 0 {
			h = int(int64(inner) * v / c.Max)
		}
		if v > 0 && h == 0 {
			h = 1
		}
		c.Bars = append(c.Bars, Bar{X: chartPad + i*slot, Y: chartH - chartPad - h, W: bw, H: h, Value: v,
			Label: labels[i], ShowLabel: i%every == 0 || i == n-1})
	}
	return c
}

// DayCharts builds the statistics page's charts.
func DayCharts(st *marketplace.AppStats) []Chart {
	labels := make([]string, len(st.Days))
	calls := make([]int64, len(st.Days))
	errs := make([]int64, len(st.Days))
	users := make([]int64, len(st.Days))
	pay := make([]int64, len(st.Days))
	for i, d := range st.Days {
		labels[i] = d.Day.Format("01-02")
		calls[i], errs[i], users[i], pay[i] = d.Invocations, d.Errors, d.ActiveUsers, d.PaymentFen
	}
	return []Chart{
		NewChart("Invocations per day", "chart-invocations", "bar-calls", labels, calls),
		NewChart("Errors per day", "chart-errors", "bar-errors", labels, errs),
		NewChart("Active users per day", "chart-users", "bar-users", labels, users),
		NewChart("Payment volume per day (fen)", "chart-payments", "bar-pay", labels, pay),
	}
}

// Yuan formats fen as yuan with two decimals ("12.34").
func Yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// When formats a time for tables.
func When(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// WhenPtr formats an optional time ("—" for nil).
func WhenPtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return When(*t)
}

// Percent formats a gray percentage.
func Percent(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

// Rate formats an error rate.
func Rate(r float64) string { return strconv.FormatFloat(100*r, 'f', 2, 64) + "%" }

// SegmentText describes a release's target segment.
func SegmentText(g marketplace.Segment) string {
	if g.Empty() {
		return "everyone"
	}
	var parts []string
	if len(g.Levels) > 0 {
		ls := make([]string, len(g.Levels))
		for i, l := range g.Levels {
			ls[i] = strconv.Itoa(l)
		}
		parts = append(parts, "levels "+strings.Join(ls, ", "))
	}
	if len(g.Channels) > 0 {
		parts = append(parts, "channels "+strings.Join(g.Channels, ", "))
	}
	if len(g.Regions) > 0 {
		parts = append(parts, "regions "+strings.Join(g.Regions, ", "))
	}
	if len(g.Whitelist) > 0 {
		parts = append(parts, fmt.Sprintf("whitelist of %d", len(g.Whitelist)))
	}
	return strings.Join(parts, "; ")
}

// Join joins a list for display ("—" when empty).
func Join(xs []string) string {
	if len(xs) == 0 {
		return "—"
	}
	return strings.Join(xs, ", ")
}

// Itoa formats an int64.
func Itoa(n int64) string { return strconv.FormatInt(n, 10) }

// splitList splits a typed list on commas, spaces and newlines.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ' ' || r == '\t' || r == '，' })
}

// ParseSegment reads a segment from its form fields: levels, channels,
// regions and whitelist, each a list.
func ParseSegment(levels, channels, regions, whitelist string) (marketplace.Segment, error) {
	var g marketplace.Segment
	for _, l := range splitList(levels) {
		n, err := strconv.Atoi(l)
		if err != nil {
			return g, fmt.Errorf("user level %q is not a number", l)
		}
		g.Levels = append(g.Levels, n)
	}
	g.Channels = splitList(channels)
	g.Regions = splitList(regions)
	g.Whitelist = splitList(whitelist)
	return g, nil
}
