package page

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/a-h/templ"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The views render exactly as the golden files under testdata/ say (run
// with -update after an intended change and review the diff).
func TestViewsGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    templ.Component
	}{
		{"confirm.html", confirmPage(confirmView{
			ID: "pi_1", App: "utility", Payee: "utility", Description: "电费 Electricity E1001 2026-11", Amount: "¥128.50",
			ExpiresAt: "2026-12-03 10:00:00", Action: "/pay/pi_1", Token: "tok", Error: "信用额度 Credit line: \"x\" is not an amount in yuan",
			Options: []option{
				{Value: "balance", Label: "余额 Balance", Available: "¥100.00", Enough: false},
				{Value: "credit", Label: "信用额度 Credit line", Available: "¥500.00", Enough: true, Checked: true},
				{Value: "combined", Label: "组合支付 Combined", Enough: true},
			},
			Shares: []share{{Method: "balance", Label: "余额 Balance", Value: "100.00"}, {Method: "credit", Label: "信用额度 Credit line", Value: "28.50"}},
		})},
		{"result.html", resultPage(resultView{Title: "支付成功 Paid", Message: "已付款给 utility。 The payment went through.",
			State: "succeeded", Amount: "¥128.50", Back: "/apps/utility/"})},
		{"escaping.html", resultPage(resultView{Title: "<script>alert(1)</script>", Message: `"><img src=x onerror=alert(1)>`,
			State: "error", Back: "javascript:alert(1)"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tc.c.Render(context.Background(), &buf); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s differs from the golden file; got:\n%s", tc.name, buf.Bytes())
			}
			if bytes.Contains(buf.Bytes(), []byte("<script>")) || bytes.Contains(buf.Bytes(), []byte(`href="javascript:`)) {
				t.Error("unescaped markup or script URL rendered")
			}
		})
	}
}
