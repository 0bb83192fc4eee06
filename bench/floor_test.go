package bench

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/jifu-open/jifu/host/abi"
)

// BenchmarkWazeroFloor runs plugins/hello on bare wazero: the same request
// and guest, kv_get reading the same map and config_get answering "Hello",
// but none of host.App's work (no pool, limits, per-call context, consent,
// audit, metrics, result_take, pointer checks). It is the floor a host built
// on wazero can reach with this guest, with and without CloseOnContextDone,
// and so tells how much of BenchmarkInvoke/jifu is the host and how much is
// the guest and wazero.
func BenchmarkWazeroFloor(b *testing.B) {
	b.Run("interrupt", func(b *testing.B) { benchFloor(b, true) })
	b.Run("nointerrupt", func(b *testing.B) { benchFloor(b, false) })
}

func floorModule(b *testing.B, kv *mapKV, interrupt bool) api.Module {
	b.Helper()
	ctx := context.Background()
	g := mustGuests(b)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(interrupt))
	b.Cleanup(func() { _ = rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)

	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	hb := rt.NewHostModuleBuilder(abi.Module)
	fn := func(name string, params []api.ValueType, result api.ValueType, f api.GoModuleFunc) {
		hb.NewFunctionBuilder().WithGoModuleFunction(f, params, []api.ValueType{result}).Export(name)
	}
	denied := func(_ context.Context, _ api.Module, s []uint64) { s[0] = api.EncodeI32(abi.ErrDenied) }
	greeting := []byte("Hello")
	fn(abi.FnKVGet, []api.ValueType{i32, i32, i32, i32}, i32, func(ctx context.Context, m api.Module, s []uint64) {
		key, _ := m.Memory().Read(api.DecodeU32(s[0]), api.DecodeU32(s[1]))
		v, ver, err := kv.Get(ctx, namespace, key)
		if err != nil {
			s[0] = api.EncodeI32(abi.ErrNotFound)
			return
		}
		res := abi.AppendKVValue(make([]byte, 0, 8+len(v)), ver, v)
		m.Memory().Write(api.DecodeU32(s[2]), res)
		s[0] = api.EncodeI32(int32(len(res)))
	})
	fn(abi.FnConfigGet, []api.ValueType{i32, i32, i32, i32}, i32, func(_ context.Context, m api.Module, s []uint64) {
		m.Memory().Write(api.DecodeU32(s[2]), greeting)
		s[0] = api.EncodeI32(int32(len(greeting)))
	})
	fn(abi.FnLog, []api.ValueType{i32, i32, i32}, i32, denied)
	fn(abi.FnClockNow, nil, i64, denied)
	fn(abi.FnRandom, []api.ValueType{i32, i32}, i32, denied)
	fn(abi.FnResultTake, []api.ValueType{i32, i32}, i32, denied)
	fn(abi.FnKVPut, []api.ValueType{i32, i32, i32, i32}, i64, denied)
	fn(abi.FnKVDelete, []api.ValueType{i32, i32}, i32, denied)
	fn(abi.FnKVCAS, []api.ValueType{i32, i32, i64, i32, i32}, i64, denied)
	fn(abi.FnKVScan, []api.ValueType{i32, i32, i32, i32, i32, i32, i32}, i32, denied)
	if _, err := hb.Instantiate(ctx); err != nil {
		b.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, g.hello, wazero.NewModuleConfig().WithName("").WithStartFunctions(abi.ExportInitialize))
	if err != nil {
		b.Fatal(err)
	}
	return mod
}

func benchFloor(b *testing.B, interrupt bool) {
	ctx := context.Background()
	kv := newMapKV()
	seed(b, kv)
	mod := floorModule(b, kv, interrupt)
	alloc := mod.ExportedFunction(abi.ExportAlloc)
	handle := mod.ExportedFunction(abi.ExportHandleHTTP)
	var stack [2]uint64
	b.ReportAllocs()
	for b.Loop() {
		in := request().AppendTo(nil)
		stack[0] = api.EncodeI32(int32(len(in)))
		if err := alloc.CallWithStack(ctx, stack[:1]); err != nil {
			b.Fatal(err)
		}
		p := api.DecodeU32(stack[0])
		mod.Memory().Write(p, in)
		stack[0], stack[1] = api.EncodeI32(int32(p)), api.EncodeI32(int32(len(in)))
		if err := handle.CallWithStack(ctx, stack[:2]); err != nil {
			b.Fatal(err)
		}
		rp, rl := abi.UnpackPtrLen(stack[0])
		view, _ := mod.Memory().Read(rp, rl)
		var resp abi.Response
		if err := resp.Decode(view); err != nil || resp.Status != 200 {
			b.Fatalf("floor: %v %d", err, resp.Status)
		}
	}
}
