package sdk

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jifu-open/jifu/host/abi"
)

// Error is a host function's error result.
type Error struct {
	Code int64 // a negative abi result code
	Op   string
}

func (e *Error) Error() string { return "jifu: " + e.Op + ": " + abi.ErrorName(e.Code) }

// Is lets errors.Is(err, sdk.ErrNotFound) match any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors for errors.Is.
var (
	ErrDenied      = &Error{Code: abi.ErrDenied}
	ErrNotFound    = &Error{Code: abi.ErrNotFound}
	ErrTooLarge    = &Error{Code: abi.ErrTooLarge}
	ErrConflict    = &Error{Code: abi.ErrConflict}
	ErrInvalid     = &Error{Code: abi.ErrInvalid}
	ErrUnavailable = &Error{Code: abi.ErrUnavailable}
)

func check(op string, res int64) error {
	if res < 0 {
		return &Error{Code: res, Op: op}
	}
	return nil
}

// scratch is the first buffer offered for variable-length results; larger
// results are fetched with result_take into a buffer of the exact size.
var scratch = make([]byte, 0, 4096)

func fetch(op string, n int32) ([]byte, error) {
	if err := check(op, int64(n)); err != nil {
		return nil, err
	}
	if int(n) <= cap(scratch) {
		return append([]byte(nil), scratch[:n]...), nil
	}
	buf := make([]byte, 0, n)
	if err := check(op, int64(hostResultTake(buf))); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// Log levels.
const (
	LevelDebug = abi.LevelDebug
	LevelInfo  = abi.LevelInfo
	LevelWarn  = abi.LevelWarn
	LevelError = abi.LevelError
)

// Log writes a message to the app's log stream (at most 8 KiB).
func Log(level int, msg string) error { return check("log", int64(hostLog(int32(level), []byte(msg)))) }

// Logf formats and logs at Info level.
func Logf(format string, args ...any) { _ = Log(LevelInfo, fmt.Sprintf(format, args...)) }

// Now returns the host's clock.
func Now() time.Time { return time.Unix(0, hostClockNow()) }

// Random fills b with secure random bytes from the host (at most 64 KiB).
func Random(b []byte) error {
	res := hostRandom(b)
	return check("random", int64(res))
}

// Config returns one of the app's configuration values or secrets.
func Config(key string) (string, error) {
	b, err := fetch("config_get", hostConfigGet([]byte(key), scratch))
	return string(b), err
}

// Entry is one key of the app's store.
type Entry struct {
	Key     string
	Value   []byte
	Version int64
}

type kv struct{}

// KV is the app's own key-value store (scope "storage").
var KV kv

// Get returns a key's value and version, or ErrNotFound.
func (kv) Get(key string) ([]byte, int64, error) {
	b, err := fetch("kv_get", hostKVGet([]byte(key), scratch))
	if err != nil {
		return nil, 0, err
	}
	v, val, err := abi.DecodeKVValue(b)
	return val, v, err
}

// Put writes a key and returns its new version.
func (kv) Put(key string, value []byte) (int64, error) {
	res := hostKVPut([]byte(key), value)
	return res, check("kv_put", res)
}

// Delete removes a key and reports whether it existed.
func (kv) Delete(key string) (bool, error) {
	res := hostKVDelete([]byte(key))
	return res == 1, check("kv_delete", int64(res))
}

// CompareAndSet writes a key only if its version is expect (0: only if it
// does not exist) and returns the new version, or ErrConflict.
func (kv) CompareAndSet(key string, expect int64, value []byte) (int64, error) {
	res := hostKVCAS([]byte(key), expect, value)
	return res, check("kv_cas", res)
}

// Scan lists up to limit keys with prefix, after the key after ("" for the
// first page), and reports whether more follow.
func (kv) Scan(prefix, after string, limit int) ([]Entry, bool, error) {
	b, err := fetch("kv_scan", hostKVScan([]byte(prefix), []byte(after), int32(limit), scratch))
	if err != nil {
		return nil, false, err
	}
	rows, more, err := abi.DecodeKVScan(b)
	if err != nil {
		return nil, false, err
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = Entry{Key: string(r.Key), Value: r.Value, Version: r.Version}
	}
	return out, more, nil
}

// Incr adds one to a decimal counter stored at key, retrying on conflict, and
// returns the new count.
func (k kv) Incr(key string) (int64, error) {
	for range 16 {
		v, ver, err := k.Get(key)
		n := int64(0)
		switch {
		case errors.Is(err, ErrNotFound):
			ver = 0
		case err != nil:
			return 0, err
		default:
			if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return 0, fmt.Errorf("jifu: kv counter %q holds %q", key, v)
			}
		}
		n++
		_, err = k.CompareAndSet(key, ver, []byte(strconv.FormatInt(n, 10)))
		if errors.Is(err, ErrConflict) {
			continue
		}
		return n, err
	}
	return 0, &Error{Code: abi.ErrConflict, Op: "kv_incr"}
}
