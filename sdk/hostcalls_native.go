//go:build !wasip1

package sdk

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/jifu-open/jifu/host/abi"
)

// emulator stands in for the host when the SDK is compiled natively (unit
// tests of an app's handlers). It follows the ABI's result conventions.
type emulator struct {
	mu      sync.Mutex
	kv      map[string]abi.KVEntry
	config  map[string]string
	pending []byte
}

var emu = &emulator{kv: map[string]abi.KVEntry{}, config: map[string]string{}}

// SetConfig sets a configuration value in the native emulation. It has no
// effect inside the sandbox, where the platform supplies configuration.
func SetConfig(key, value string) {
	emu.mu.Lock()
	defer emu.mu.Unlock()
	emu.config[key] = value
}

func (e *emulator) result(out, res []byte) int32 {
	if len(res) > cap(out) {
		e.pending = res
	} else {
		copy(out[:cap(out)], res)
	}
	return int32(len(res))
}

func hostLog(level int32, msg []byte) int32 {
	if level < abi.LevelDebug || level > abi.LevelError {
		return abi.ErrInvalid
	}
	if len(msg) > 8<<10 {
		return abi.ErrTooLarge
	}
	fmt.Fprintf(os.Stderr, "app log [%d]: %s\n", level, msg)
	return 0
}

func hostClockNow() int64 { return time.Now().UnixNano() }

func hostRandom(b []byte) int32 {
	if len(b) > 64<<10 {
		return abi.ErrTooLarge
	}
	_, _ = rand.Read(b)
	return int32(len(b))
}

func hostConfigGet(key, out []byte) int32 {
	emu.mu.Lock()
	defer emu.mu.Unlock()
	emu.pending = nil
	if len(key) == 0 || len(key) > 64 {
		return abi.ErrInvalid
	}
	v, ok := emu.config[string(key)]
	if !ok {
		return abi.ErrNotFound
	}
	return emu.result(out, []byte(v))
}

func checkKey(key []byte) int32 {
	switch {
	case len(key) == 0:
		return abi.ErrInvalid
	case len(key) > 1024:
		return abi.ErrTooLarge
	}
	return 0
}

func hostKVGet(key, out []byte) int32 {
	emu.mu.Lock()
	defer emu.mu.Unlock()
	emu.pending = nil
	if r := checkKey(key); r != 0 {
		return r
	}
	e, ok := emu.kv[string(key)]
	if !ok {
		return abi.ErrNotFound
	}
	return emu.result(out, abi.AppendKVValue(nil, e.Version, e.Value))
}

func hostKVPut(key, val []byte) int64 { return hostKVCAS(key, -1, val) }

func hostKVDelete(key []byte) int32 {
	emu.mu.Lock()
	defer emu.mu.Unlock()
	emu.pending = nil
	if r := checkKey(key); r != 0 {
		return r
	}
	if _, ok := emu.kv[string(key)]; !ok {
		return 0
	}
	delete(emu.kv, string(key))
	return 1
}

// hostKVCAS with expect -1 is an unconditional put.
func hostKVCAS(key []byte, expect int64, val []byte) int64 {
	emu.mu.Lock()
	defer emu.mu.Unlock()
	emu.pending = nil
	if r := checkKey(key); r != 0 {
		return int64(r)
	}
	if len(val) > 1<<20 {
		return abi.ErrTooLarge
	}
	e := emu.kv[string(key)]
	if expect >= 0 && e.Version != expect {
		return abi.ErrConflict
	}
	e = abi.KVEntry{Key: append([]byte(nil), key...), Value: append([]byte(nil), val...), Version: e.Version + 1}
	emu.kv[string(key)] = e
	return e.Version
}

func hostKVScan(prefix, after []byte, limit int32, out []byte) int32 {
	emu.mu.Lock()
	defer emu.mu.Unlock()
	emu.pending = nil
	if limit < 1 || limit > 1000 {
		return abi.ErrInvalid
	}
	var rows []abi.KVEntry
	for k, e := range emu.kv {
		if bytes.HasPrefix([]byte(k), prefix) && bytes.Compare([]byte(k), after) > 0 {
			rows = append(rows, e)
		}
	}
	sort.Slice(rows, func(i, j int) bool { return bytes.Compare(rows[i].Key, rows[j].Key) < 0 })
	more := len(rows) > int(limit)
	if more {
		rows = rows[:limit]
	}
	return emu.result(out, abi.AppendKVScan(nil, rows, more))
}

func hostResultTake(out []byte) int32 {
	emu.mu.Lock()
	defer emu.mu.Unlock()
	p := emu.pending
	if p == nil {
		return abi.ErrNoResult
	}
	if len(p) > cap(out) {
		return abi.ErrTooLarge
	}
	copy(out[:cap(out)], p)
	emu.pending = nil
	return int32(len(p))
}
