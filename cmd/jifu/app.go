package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/sdk/devkit"
)

type appCmd struct {
	Init  appInitCmd  `cmd:"" help:"Scaffold a working app in a new folder NAME."`
	Build appBuildCmd `cmd:"" help:"Compile an app to build/app.wasm and validate it."`
	Check appCheckCmd `cmd:"" help:"Validate a module and its manifest as the review will."`
	Run   appRunCmd   `cmd:"" help:"Run a module in the local sandbox with the real limits and capabilities."`
}

type appInitCmd struct {
	Name string `arg:"" help:"App name (its slug): 3-40 characters of a-z, 0-9 and -."`
	Dir  string `default:"." type:"path" help:"Parent folder."`
	SDK  string `name:"sdk" type:"path" env:"JIFU_SDK" help:"Local checkout of the platform module for a replace directive (found automatically when run inside one)."`
}

func (c appInitCmd) Run(_ context.Context, e *env) error {
	sdkPath := c.SDK
	if sdkPath == "" {
		wd, _ := os.Getwd()
		sdkPath = devkit.FindSDK(wd)
	}
	if sdkPath == "" {
		if exe, err := os.Executable(); err == nil {
			sdkPath = devkit.FindSDK(filepath.Dir(exe))
		}
	}
	dir, err := devkit.Init(c.Name, devkit.InitOptions{Dir: c.Dir, SDKPath: sdkPath})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created %s\nnext:\n  cd %s\n  jifu app build\n  jifu app run build/app.wasm --request 'GET /'\n", dir, dir)
	return nil
}

type appBuildCmd struct {
	Dir    string `arg:"" optional:"" default:"." type:"path" help:"App folder (holding jifu.json)."`
	Output string `short:"o" type:"path" help:"Output module (default DIR/build/app.wasm)."`
}

func (c appBuildCmd) Run(ctx context.Context, e *env) error {
	out, err := devkit.Build(ctx, c.Dir, devkit.BuildOptions{Output: c.Output})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "built %s\n", out)
	return check(ctx, e, out, "")
}

type appCheckCmd struct {
	File     string `arg:"" type:"existingfile" help:"The module (.wasm)."`
	Manifest string `type:"existingfile" help:"The manifest (default: jifu.json beside the module)."`
}

func (c appCheckCmd) Run(ctx context.Context, e *env) error { return check(ctx, e, c.File, c.Manifest) }

// check prints the validation report of a module and fails if it has problems.
func check(ctx context.Context, e *env, wasmPath, manifestPath string) error {
	wasm, m, err := readModule(wasmPath, manifestPath)
	if err != nil {
		return err
	}
	h, err := host.New(ctx, host.Config{CacheDir: filepath.Join(e.cli.DataDir, "wazero-cache"), Logger: e.log})
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	ps := h.Validate(ctx, wasm, m)
	fmt.Fprintf(e.stdout, "%s: %s %s, %d bytes, scopes %v, entry points %v\n", wasmPath, m.Slug, m.Version, len(wasm), m.Scopes, m.EntryPoints)
	l := m.Limits
	fmt.Fprintf(e.stdout, "limits: %d memory pages, %d ms, %d host calls, request %d B, response %d B\n",
		l.MemoryPages, l.TimeoutMS, l.HostCalls, l.RequestBytes, l.ResponseBytes)
	if len(ps) == 0 {
		fmt.Fprintln(e.stdout, "check passed")
		return nil
	}
	fmt.Fprintf(e.stdout, "check failed, %d problems:\n", len(ps))
	for _, p := range ps {
		fmt.Fprintf(e.stdout, "  %s\n", p)
	}
	return &jifu.Error{Code: jifu.CodeInvalid, Message: fmt.Sprintf("%s failed the check", wasmPath), Err: &host.ValidationError{Problems: ps}}
}

// readModule reads a module and its manifest; manifest problems are left to
// the host's validation so they are all reported together.
func readModule(wasmPath, manifestPath string) ([]byte, *manifest.Manifest, error) {
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, nil, jifu.Errorf(jifu.CodeNotFound, "reading module: %w", err)
	}
	mp := devkit.ManifestFor(wasmPath, manifestPath)
	raw, err := os.ReadFile(mp)
	if err != nil {
		return nil, nil, jifu.Errorf(jifu.CodeNotFound, "reading manifest: %w", err)
	}
	m, ps := manifest.Parse(raw)
	if m == nil {
		return nil, nil, &jifu.Error{Code: jifu.CodeInvalid, Message: mp + " is not a manifest", Err: &host.ValidationError{Problems: ps}}
	}
	return wasm, m, nil
}

type appRunCmd struct {
	File     string            `arg:"" type:"existingfile" help:"The module (.wasm)."`
	Manifest string            `type:"existingfile" help:"The manifest (default: jifu.json beside the module)."`
	Request  string            `default:"GET /" help:"The request line: 'METHOD /path?query'."`
	Body     string            `help:"Request body; @FILE reads a file."`
	Header   []string          `short:"H" help:"Request header 'Name: value' (repeatable)."`
	User     string            `help:"Platform user id the request acts for."`
	Config   map[string]string `help:"App configuration key=value (repeatable)."`
	Event    string            `help:"Send an on_event of this type instead of an HTTP request."`
	Payload  string            `help:"Event payload (JSON)."`
}

func (c appRunCmd) Run(ctx context.Context, e *env) error {
	wasm, m, err := readModule(c.File, c.Manifest)
	if err != nil {
		return err
	}
	// The local sandbox: the real limits, the real stores on the private
	// database, in the app's sandbox namespace; the developer consents to
	// every scope for their own test user.
	p, err := startPlatform(ctx, e, true)
	if err != nil {
		return err
	}
	defer p.Close()
	app, err := p.host.Load(ctx, host.AppSpec{Wasm: wasm, Manifest: m, Namespace: "sandbox:" + m.Slug, Config: c.Config})
	if err != nil {
		var ve *host.ValidationError
		if asValidation(err, &ve) {
			for _, p := range ve.Problems {
				fmt.Fprintf(e.stderr, "  %s\n", p)
			}
		}
		return err
	}
	defer app.Close(ctx)
	caller := host.Caller{User: c.User}
	if c.Event != "" {
		res, err := app.OnEvent(ctx, caller, &abi.Event{Type: c.Event, ID: "local-" + c.Event, Payload: []byte(c.Payload)})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "event status %d %s\n", res.Status, res.Message)
		return nil
	}
	method, path, query, err := devkit.ParseRequestLine(c.Request)
	if err != nil {
		return err
	}
	body := []byte(c.Body)
	if strings.HasPrefix(c.Body, "@") {
		if body, err = os.ReadFile(c.Body[1:]); err != nil {
			return jifu.Errorf(jifu.CodeNotFound, "reading body: %w", err)
		}
	}
	req := &abi.Request{Method: method, Path: path, Query: query, Body: body}
	for _, h := range c.Header {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return jifu.Errorf(jifu.CodeInvalid, "header %q must look like 'Name: value'", h)
		}
		req.Headers = append(req.Headers, abi.Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	resp, err := app.HandleHTTP(ctx, caller, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "HTTP %d\n", resp.Status)
	for _, h := range resp.Headers {
		fmt.Fprintf(e.stdout, "%s: %s\n", h.Name, h.Value)
	}
	fmt.Fprintf(e.stdout, "\n%s\n", resp.Body)
	return nil
}
