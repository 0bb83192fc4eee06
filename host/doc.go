// Package host runs apps: sandboxed WebAssembly modules executed by wazero,
// linked only with the host functions their granted scopes allow.
//
// A Host owns the compilation cache and the capability registry. Loading an app
// version (Load) validates its module and manifest, compiles it once (cached on
// disk across restarts), links it with a host module holding exactly its
// granted functions, and keeps a bounded pool of warm instances. Each
// invocation (HandleHTTP, OnEvent) takes an instance from the pool, runs under
// the app's limits (wall clock, memory pages, host calls, request and response
// size) and carries its own app and user to every capability call; an instance
// that trapped, panicked, timed out or broke a limit is discarded, never reused.
//
//	h, _ := host.New(ctx, host.Config{CacheDir: ".data/wazero", KV: kv, Audit: aud})
//	app, err := h.Load(ctx, host.AppSpec{Slug: "hello", Wasm: wasm, Manifest: m})
//	resp, err := app.HandleHTTP(ctx, host.Caller{User: "u1"}, &abi.Request{Method: "GET", Path: "/"})
//
// A wall-clock limit stops a looping guest through Config.Interrupt: by
// default each module is instrumented at load (package wasmrewrite) to call
// a private yield host function every Config.YieldBudget loop iterations,
// which ends the invocation once its deadline has passed (interrupt.go).
//
// The host functions live one file per capability (log.go, clock.go,
// random.go, config.go, kv.go) and are registered in one table (registry.go).
// The ABI they implement is package abi and docs/ABI.md.
package host
