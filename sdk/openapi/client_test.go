package openapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/sdk/openapi"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// server verifies signatures as the platform does and answers the app info,
// or a rate-limit refusal for /payments.
func server() *httptest.Server {
	v := &opensign.Verifier{Secrets: opensign.SecretsFunc(func(_ context.Context, k string) ([]byte, error) {
		if k == "sbx_demo" {
			return []byte("s3cret"), nil
		}
		return nil, jifu.Errorf(jifu.CodeNotFound, "no key")
	})}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if _, err := v.Verify(r); err != nil {
			w.WriteHeader(opensign.Status(jifu.ErrorCode(err)))
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": jifu.ErrorCode(err), "message": jifu.ErrorMessage(err)}})
			return
		}
		if r.URL.Path == "/openapi/v1/payments" {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
			return
		}
		_ = json.NewEncoder(w).Encode(openapi.AppInfo{Slug: "demo", Environment: "sandbox", AppKey: "sbx_demo"})
	}))
}

func Example() {
	srv := server()
	defer srv.Close()
	c := openapi.New(srv.URL, opensign.Key{AppKey: "sbx_demo", Secret: []byte("s3cret")})
	info, err := c.App(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.Slug, info.Environment)
	// Output: demo sandbox
}

func TestRefusals(t *testing.T) {
	srv := server()
	defer srv.Close()
	ctx := context.Background()
	_, err := openapi.New(srv.URL, opensign.Key{AppKey: "sbx_demo", Secret: []byte("wrong")}).App(ctx)
	var e *openapi.Error
	if !errors.As(err, &e) || e.Status != 401 || e.Code != opensign.CodeMismatch {
		t.Fatalf("wrong secret: %v", err)
	}
	_, err = openapi.New(srv.URL, opensign.Key{AppKey: "sbx_demo", Secret: []byte("s3cret")}).
		CreatePayment(ctx, openapi.PaymentRequest{User: "u1", Amount: 1, Description: "x", Key: "k"})
	if !errors.As(err, &e) || e.Status != 429 || e.Code != "rate_limited" || e.RetryAfter != 3*time.Second {
		t.Fatalf("rate limited: %+v", err)
	}
}
