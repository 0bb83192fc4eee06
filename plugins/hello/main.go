// Command hello is the first-party sample app: a greeting page with a visit
// counter kept in the app's own key-value store.
//
//	GET  /            the page (reads the counter: one kv_get)
//	POST /visits      adds one visit (kv compare-and-set), answers with the count
//	GET  /api/visits  the count as JSON
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm ./plugins/hello
package main

import (
	"errors"
	"fmt"
	"html"
	"strconv"

	"github.com/jifu-open/jifu/sdk"
)

const visitsKey = "visits"

func init() {
	sdk.HandleHTTP(route)
}

func route(r *sdk.Request) *sdk.Response {
	switch {
	case r.Path == "/" && r.Method == "GET":
		return page(r)
	case r.Path == "/visits" && r.Method == "POST":
		n, err := sdk.KV.Incr(visitsKey)
		if err != nil {
			return failure(err)
		}
		sdk.Logf("visit %d by %q", n, r.User)
		if r.Header("Accept") == "application/json" {
			return sdk.JSON(200, map[string]int64{"visits": n})
		}
		return sdk.Text(303, "").SetHeader("Location", "./")
	case r.Path == "/api/visits" && r.Method == "GET":
		n, err := visits()
		if err != nil {
			return failure(err)
		}
		return sdk.JSON(200, map[string]int64{"visits": n})
	}
	return sdk.Text(404, "not found")
}

func visits() (int64, error) {
	v, _, err := sdk.KV.Get(visitsKey)
	if errors.Is(err, sdk.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(v), 10, 64)
}

func page(r *sdk.Request) *sdk.Response {
	n, err := visits()
	if err != nil {
		return failure(err)
	}
	greeting := greeting()
	who := "guest"
	if r.User != "" {
		who = r.User
	}
	return sdk.HTML(200, fmt.Sprintf(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hello · Jifu</title></head>
<body><h1 data-testid="greeting">%s, %s!</h1>
<p>This page has been visited <strong data-testid="visits">%d</strong> times.</p>
<form method="post" action="visits"><button type="submit">Visit</button></form>
</body></html>`, html.EscapeString(greeting), html.EscapeString(who), n))
}

// greetingText caches the configured greeting: an app version's
// configuration is fixed while it is loaded, so one host call per instance
// is enough.
var greetingText string

func greeting() string {
	if greetingText == "" {
		g, err := sdk.Config("greeting")
		if err != nil || g == "" {
			return "Hello"
		}
		greetingText = g
	}
	return greetingText
}

func failure(err error) *sdk.Response {
	_ = sdk.Log(sdk.LevelError, err.Error())
	return sdk.Text(503, "storage unavailable, try again")
}

func main() {}
