package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/sdk/devkit"
	"github.com/jifu-open/jifu/sdk/openapi"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// appSubmitCmd uploads a version through the signed open API with the
// app's key and secret. The secret comes from the environment only, so it
// never shows in a process list or a shell history.
type appSubmitCmd struct {
	File     string `arg:"" type:"existingfile" help:"The module (.wasm)."`
	Manifest string `type:"existingfile" help:"The manifest (default: jifu.json beside the module)."`
	URL      string `name:"url" default:"http://localhost:8080" env:"JIFU_OPENAPI_URL" help:"The platform's base URL."`
	AppKey   string `name:"app-key" env:"JIFU_APP_KEY" required:"" help:"The app's AppKey."`
	NoSubmit bool   `name:"no-submit" help:"Upload and run the checks, but do not submit for review."`
}

func (c appSubmitCmd) Run(ctx context.Context, e *env) error {
	secret := e.getenv("JIFU_APP_SECRET")
	if secret == "" {
		return jifu.Errorf(jifu.CodeInvalid, "set JIFU_APP_SECRET to the app's SECRET")
	}
	wasm, err := os.ReadFile(c.File)
	if err != nil {
		return jifu.Errorf(jifu.CodeNotFound, "reading module: %w", err)
	}
	mp := devkit.ManifestFor(c.File, c.Manifest)
	raw, err := os.ReadFile(mp)
	if err != nil {
		return jifu.Errorf(jifu.CodeNotFound, "reading manifest: %w", err)
	}
	cl := openapi.New(c.URL, opensign.Key{AppKey: c.AppKey, Secret: []byte(secret)})
	v, err := cl.UploadVersion(ctx, wasm, raw, !c.NoSubmit)
	var ae *openapi.Error
	if errors.As(err, &ae) {
		if len(ae.Problems) > 0 {
			ps := make([]manifest.Problem, len(ae.Problems))
			for i, p := range ae.Problems {
				ps[i] = manifest.Problem{Code: p.Code, Field: p.Field, Message: p.Message}
			}
			return &jifu.Error{Code: ae.Code, Message: ae.Message, Err: &host.ValidationError{Problems: ps}}
		}
		return &jifu.Error{Code: ae.Code, Message: strings.TrimSpace(ae.Message)}
	}
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "submit: %w", err)
	}
	fmt.Fprintf(e.stdout, "uploaded version %s (id %d, sha256 %s): %s\n", v.Version, v.ID, v.SHA256, v.Status)
	if v.Submitted {
		fmt.Fprintln(e.stdout, "submitted for review")
	}
	return nil
}
