package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/host/wasmrewrite"
)

// wasiModule is the WASI namespace Go and Rust guests import even as reactors.
const wasiModule = "wasi_snapshot_preview1"

// wasiAllowed lists the WASI functions a guest may import. The sandbox mounts
// no filesystem and no sockets, so the file functions can only fail; sockets
// are not allowed at all.
var wasiAllowed = map[string]bool{
	"args_get": true, "args_sizes_get": true, "environ_get": true, "environ_sizes_get": true,
	"clock_res_get": true, "clock_time_get": true, "random_get": true,
	"proc_exit": true, "proc_raise": true, "sched_yield": true, "poll_oneoff": true,
	"fd_advise": true, "fd_allocate": true, "fd_close": true, "fd_datasync": true,
	"fd_fdstat_get": true, "fd_fdstat_set_flags": true, "fd_fdstat_set_rights": true,
	"fd_filestat_get": true, "fd_filestat_set_size": true, "fd_filestat_set_times": true,
	"fd_pread": true, "fd_prestat_get": true, "fd_prestat_dir_name": true, "fd_pwrite": true,
	"fd_read": true, "fd_readdir": true, "fd_renumber": true, "fd_seek": true, "fd_sync": true,
	"fd_tell": true, "fd_write": true,
	"path_create_directory": true, "path_filestat_get": true, "path_filestat_set_times": true,
	"path_link": true, "path_open": true, "path_readlink": true, "path_remove_directory": true,
	"path_rename": true, "path_symlink": true, "path_unlink_file": true,
}

// Validate checks a module and its manifest the way the review does: the
// manifest's fields, scopes known to this host, the module's size, that it
// compiles, that it imports only allowed functions (and scoped ones only with
// their scope declared, with the right signature), and that it exports the
// memory, the allocator and every entry point the manifest declares. It
// returns every problem found; none means the module may run.
func (h *Host) Validate(ctx context.Context, wasm []byte, m *manifest.Manifest) []manifest.Problem {
	ps, compiled := h.validate(ctx, h.validator, wasm, m)
	if compiled != nil {
		_ = compiled.Close(ctx)
	}
	return ps
}

// validate runs Validate's checks, compiling with rt. It returns the compiled
// module (nil if it did not compile) so that Load compiles only once; the
// caller closes it.
func (h *Host) validate(ctx context.Context, rt wazero.Runtime, wasm []byte, m *manifest.Manifest) ([]manifest.Problem, wazero.CompiledModule) {
	var ps []manifest.Problem
	add := func(code, field, format string, args ...any) {
		ps = append(ps, manifest.Problem{Code: code, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if m == nil {
		add(manifest.CodeField, "", "a manifest is required")
		return ps, nil
	}
	ps = append(ps, m.Check()...)
	for i, s := range m.Scopes {
		if _, ok := h.registry.Scope(s); !ok {
			add(manifest.CodeScopeUnknown, fmt.Sprintf("scopes[%d]", i), "scope %q is not offered by this platform", s)
		}
	}
	if len(wasm) > h.cfg.MaxModuleSize {
		add(manifest.CodeModuleSize, "", "module is %d bytes, at most %d", len(wasm), h.cfg.MaxModuleSize)
		return ps, nil
	}
	// wazero's decoder allocates by the counts a module declares before it
	// reads them: a module of a few bytes can ask for hundreds of gigabytes.
	// Nothing reaches the compiler, in any interrupt mode, unless every
	// count fits the bytes that hold it.
	if err := wasmrewrite.Check(wasm); err != nil && !errors.Is(err, wasmrewrite.ErrReserved) {
		add(manifest.CodeModuleInvalid, "", "module does not decode: %v", err)
		return ps, nil
	}
	// In yield mode the runtime compiles the instrumented module; its imports
	// are the original's plus the host's private yield, skipped below. A
	// module the rewriter refuses (one importing the private namespace, or one
	// it cannot parse) is compiled as it is, so that every problem is reported
	// from the original: the private import as not importable.
	code, ierr := h.instrument(wasm)
	instrumented := ierr == nil && h.interrupt == InterruptYield
	if ierr != nil {
		code = wasm
	}
	compiled, err := rt.CompileModule(ctx, code)
	if err != nil {
		add(manifest.CodeModuleInvalid, "", "module does not compile: %v", err)
		return ps, nil
	}
	if ierr != nil && !errors.Is(ierr, wasmrewrite.ErrReserved) {
		add(manifest.CodeModuleInvalid, "", "module cannot be instrumented for the wall-clock limit: %v", ierr)
	}

	for _, def := range compiled.ImportedFunctions() {
		mod, name, _ := def.Import()
		where := mod + "." + name
		if instrumented && mod == wasmrewrite.YieldModule {
			continue // the host's own import, added by the rewriter
		}
		switch mod {
		case wasiModule:
			if !wasiAllowed[name] {
				add(manifest.CodeImport, where, "WASI function %s is not available in the sandbox", name)
			}
		case abi.Module:
			f, ok := h.registry.functions[name]
			switch {
			case !ok:
				add(manifest.CodeImport, where, "%s has no host function %s", abi.Module, name)
			case f.scope != "" && !m.HasScope(f.scope):
				add(manifest.CodeScopeMissing, where, "%s needs scope %q, which the manifest does not declare", name, f.scope)
			case !slices.Equal(def.ParamTypes(), f.params) || !slices.Equal(def.ResultTypes(), []api.ValueType{f.result}):
				add(manifest.CodeImport, where, "signature %s, want %s", signature(def.ParamTypes(), def.ResultTypes()),
					signature(f.params, []api.ValueType{f.result}))
			}
		default:
			add(manifest.CodeImport, where, "module %q is not importable; use %s", mod, abi.Module)
		}
	}
	for _, mem := range compiled.ImportedMemories() {
		mod, name, _ := mem.Import()
		add(manifest.CodeImport, mod+"."+name, "imported memories are not allowed; export your own %q", abi.ExportMemory)
	}

	if _, ok := compiled.ExportedMemories()[abi.ExportMemory]; !ok {
		add(manifest.CodeExportMissing, abi.ExportMemory, "the module must export its memory as %q", abi.ExportMemory)
	}
	exports := compiled.ExportedFunctions()
	want := map[string][2][]api.ValueType{
		abi.ExportAlloc: {{i32}, {i32}},
	}
	for _, ep := range m.EntryPoints {
		want[ep] = [2][]api.ValueType{{i32, i32}, {i64}}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sig := want[n]
		def, ok := exports[n]
		switch {
		case !ok:
			add(manifest.CodeExportMissing, n, "the module must export %s%s", n, signature(sig[0], sig[1]))
		case !slices.Equal(def.ParamTypes(), sig[0]) || !slices.Equal(def.ResultTypes(), sig[1]):
			add(manifest.CodeExportMissing, n, "%s has signature %s, want %s", n,
				signature(def.ParamTypes(), def.ResultTypes()), signature(sig[0], sig[1]))
		}
	}
	if def, ok := exports[abi.ExportInitialize]; ok && (len(def.ParamTypes()) != 0 || len(def.ResultTypes()) != 0) {
		add(manifest.CodeExportMissing, abi.ExportInitialize, "%s must take and return nothing", abi.ExportInitialize)
	}
	return ps, compiled
}

func signature(params, results []api.ValueType) string {
	s := "("
	for i, p := range params {
		if i > 0 {
			s += ", "
		}
		s += api.ValueTypeName(p)
	}
	s += ") -> ("
	for i, r := range results {
		if i > 0 {
			s += ", "
		}
		s += api.ValueTypeName(r)
	}
	return s + ")"
}
