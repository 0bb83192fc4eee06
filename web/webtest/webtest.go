// Package webtest renders templ components for tests, selects elements by
// their data-testid, and compares rendered pages with golden files under
// the calling package's testdata/ (go test -update rewrites them).
//
//	doc := webtest.Render(t, portal.App(view))
//	if len(webtest.ByTestID(doc, "promote")) != 1 { ... }
//	webtest.Golden(t, "app-gray", webtest.HTML(t, portal.App(view)))
package webtest

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a-h/templ"
	"golang.org/x/net/html"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// HTML renders c to a string.
func HTML(t testing.TB, c templ.Component) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.Render(context.Background(), &b); err != nil {
		t.Fatalf("render: %v", err)
	}
	return b.String()
}

// Render renders c and parses the result.
func Render(t testing.TB, c templ.Component) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(HTML(t, c)))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return doc
}

// Attr returns n's attribute key ("" when absent).
func Attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// ByTestID returns the elements whose data-testid is id, in document order.
func ByTestID(n *html.Node, id string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && Attr(n, "data-testid") == id {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

// One returns the one element with data-testid id, failing otherwise.
func One(t testing.TB, n *html.Node, id string) *html.Node {
	t.Helper()
	ns := ByTestID(n, id)
	if len(ns) != 1 {
		t.Fatalf("%d elements with data-testid=%q, want 1", len(ns), id)
	}
	return ns[0]
}

// Text returns the text inside n, spaces collapsed.
func Text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// Golden compares got with testdata/name.golden.html, rewriting it with
// -update.
func Golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.html")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendered page (go test -update rewrites it)\n got: %.2000s\nwant: %.2000s", path, got, want)
	}
}
