package host

import (
	"context"

	"github.com/tetratelabs/wazero/api"

	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/kvstore"
)

// KVStore is the storage behind the kv capability (package kvstore). The
// namespace is chosen by the host from the invocation's app, never by the guest.
type KVStore interface {
	Get(ctx context.Context, ns string, key []byte) (value []byte, version int64, err error)
	Put(ctx context.Context, ns string, key, value []byte) (version int64, err error)
	Delete(ctx context.Context, ns string, key []byte) (deleted bool, err error)
	CompareAndSet(ctx context.Context, ns string, key []byte, expectVersion int64, value []byte) (version int64, err error)
	Scan(ctx context.Context, ns string, prefix, after []byte, limit int) (entries []kvstore.Entry, more bool, err error)
}

// readKey reads a key argument, enforcing the store's size bound before
// copying it out of guest memory.
func (c *call) readKey(ptr, n uint32) ([]byte, int64) {
	if n == 0 {
		c.checkRange(ptr, n)
		return nil, abi.ErrInvalid
	}
	if n > kvstore.MaxKeyBytes {
		c.checkRange(ptr, n)
		return nil, abi.ErrTooLarge
	}
	return c.read(ptr, n), 0
}

func (c *call) readValue(ptr, n uint32) ([]byte, int64) {
	if n > kvstore.MaxValueBytes {
		c.checkRange(ptr, n)
		return nil, abi.ErrTooLarge
	}
	return c.read(ptr, n), 0
}

// fnKVGet reads a key of the app's store. Scope: storage.
//
//	kv_get(key_ptr i32, key_len i32, out_ptr i32, out_cap i32) -> i32
//
// The result is u64 version (little-endian) followed by the value; the call
// returns its length (see result_take when it exceeds out_cap),
// abi.ErrNotFound, abi.ErrInvalid for an empty key or abi.ErrTooLarge for a key
// over 1 KiB.
var fnKVGet = &hostFunc{
	name: abi.FnKVGet, capability: "kv", scope: "storage",
	params:     []api.ValueType{i32, i32, i32, i32},
	paramNames: []string{"key_ptr", "key_len", "out_ptr", "out_cap"}, result: i32,
	call: func(ctx context.Context, c *call) int64 {
		key, res := c.readKey(c.u32(0), c.u32(1))
		out, capacity := c.u32(2), c.u32(3)
		c.checkRange(out, capacity)
		if res != 0 {
			return res
		}
		v, ver, err := c.inv.app.host.kv.Get(ctx, c.inv.app.namespace, key)
		if err != nil {
			return errorResult(err)
		}
		return c.writeResult(out, capacity, abi.AppendKVValue(make([]byte, 0, 8+len(v)), ver, v))
	},
}

// fnKVPut writes a key of the app's store. Scope: storage.
//
//	kv_put(key_ptr i32, key_len i32, val_ptr i32, val_len i32) -> i64
//
// Returns the key's new version (1 for a new key), abi.ErrInvalid for an
// empty key, abi.ErrTooLarge for a key over 1 KiB or a value over 1 MiB.
var fnKVPut = &hostFunc{
	name: abi.FnKVPut, capability: "kv", scope: "storage",
	params:     []api.ValueType{i32, i32, i32, i32},
	paramNames: []string{"key_ptr", "key_len", "val_ptr", "val_len"}, result: i64,
	call: func(ctx context.Context, c *call) int64 {
		key, res := c.readKey(c.u32(0), c.u32(1))
		val, res2 := c.readValue(c.u32(2), c.u32(3))
		if res != 0 {
			return res
		}
		if res2 != 0 {
			return res2
		}
		ver, err := c.inv.app.host.kv.Put(ctx, c.inv.app.namespace, key, val)
		if err != nil {
			return errorResult(err)
		}
		return ver
	},
}

// fnKVDelete removes a key of the app's store. Scope: storage.
//
//	kv_delete(key_ptr i32, key_len i32) -> i32
//
// Returns 1 when the key existed, 0 when it did not, or an error code.
var fnKVDelete = &hostFunc{
	name: abi.FnKVDelete, capability: "kv", scope: "storage",
	params: []api.ValueType{i32, i32}, paramNames: []string{"key_ptr", "key_len"}, result: i32,
	call: func(ctx context.Context, c *call) int64 {
		key, res := c.readKey(c.u32(0), c.u32(1))
		if res != 0 {
			return res
		}
		deleted, err := c.inv.app.host.kv.Delete(ctx, c.inv.app.namespace, key)
		if err != nil {
			return errorResult(err)
		}
		if deleted {
			return 1
		}
		return 0
	},
}

// fnKVCAS writes a key only if its version is the expected one (0: only if
// the key does not exist). Scope: storage.
//
//	kv_cas(key_ptr i32, key_len i32, expect i64, val_ptr i32, val_len i32) -> i64
//
// Returns the new version, abi.ErrConflict when the version differs, or
// another error code as kv_put.
var fnKVCAS = &hostFunc{
	name: abi.FnKVCAS, capability: "kv", scope: "storage",
	params:     []api.ValueType{i32, i32, i64, i32, i32},
	paramNames: []string{"key_ptr", "key_len", "expect", "val_ptr", "val_len"}, result: i64,
	call: func(ctx context.Context, c *call) int64 {
		key, res := c.readKey(c.u32(0), c.u32(1))
		expect := c.i64(2)
		val, res2 := c.readValue(c.u32(3), c.u32(4))
		if res != 0 {
			return res
		}
		if res2 != 0 {
			return res2
		}
		if expect < 0 {
			return abi.ErrInvalid
		}
		ver, err := c.inv.app.host.kv.CompareAndSet(ctx, c.inv.app.namespace, key, expect, val)
		if err != nil {
			return errorResult(err)
		}
		return ver
	},
}

// fnKVScan lists keys of the app's store with a prefix, in ascending byte
// order, after a cursor key. Scope: storage.
//
//	kv_scan(prefix_ptr i32, prefix_len i32, after_ptr i32, after_len i32, limit i32, out_ptr i32, out_cap i32) -> i32
//
// An empty prefix lists every key; an empty cursor starts at the first key;
// limit is 1..1000. The result (abi.AppendKVScan) holds a "more" flag and the
// entries; the call returns its length (see result_take).
var fnKVScan = &hostFunc{
	name: abi.FnKVScan, capability: "kv", scope: "storage",
	params:     []api.ValueType{i32, i32, i32, i32, i32, i32, i32},
	paramNames: []string{"prefix_ptr", "prefix_len", "after_ptr", "after_len", "limit", "out_ptr", "out_cap"}, result: i32,
	call: func(ctx context.Context, c *call) int64 {
		pp, pn, ap, an, limit, out, capacity := c.u32(0), c.u32(1), c.u32(2), c.u32(3), c.i32(4), c.u32(5), c.u32(6)
		if pn > kvstore.MaxKeyBytes || an > kvstore.MaxKeyBytes {
			c.checkRange(pp, pn)
			c.checkRange(ap, an)
			return abi.ErrTooLarge
		}
		prefix, after := c.read(pp, pn), c.read(ap, an)
		c.checkRange(out, capacity)
		if limit < 1 || limit > kvstore.MaxScanLimit {
			return abi.ErrInvalid
		}
		entries, more, err := c.inv.app.host.kv.Scan(ctx, c.inv.app.namespace, prefix, after, int(limit))
		if err != nil {
			return errorResult(err)
		}
		rows := make([]abi.KVEntry, len(entries))
		for i, e := range entries {
			rows[i] = abi.KVEntry{Key: e.Key, Value: e.Value, Version: e.Version}
		}
		return c.writeResult(out, capacity, abi.AppendKVScan(nil, rows, more))
	},
}
