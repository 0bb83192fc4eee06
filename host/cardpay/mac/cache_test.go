package mac

import (
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

// reference is UnionPayECB without the cache, as first written.
func reference(t testing.TB, key, mab []byte) [8]byte {
	b, err := block(key)
	if err != nil {
		t.Fatal(err)
	}
	x := xorBlocks(mab)
	h := []byte(strings.ToUpper(hex.EncodeToString(x[:])))
	var e [8]byte
	b.Encrypt(e[:], h[:8])
	subtle.XORBytes(e[:], e[:], h[8:])
	b.Encrypt(e[:], e[:])
	var out [8]byte
	copy(out[:], strings.ToUpper(hex.EncodeToString(e[:]))[:8])
	return out
}

// TestCipherCache: with more keys than the cache holds, used from many
// goroutines (run with -race), every MAC is the uncached one and the cache
// stays bounded.
func TestCipherCache(t *testing.T) {
	const keys = 3 * maxCachedKeys
	mab := []byte("0200\x30\x20\x04\xc0\x20\xc0\x98\x11message element block")
	var wg sync.WaitGroup
	errs := make(chan string, keys)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys {
				key := make([]byte, 8+8*(i%2))
				for j := range key {
					key[j] = byte(i*31 + j*7 + g%2)
				}
				for range 2 {
					got, err := UnionPayECB(key, mab)
					if err != nil {
						errs <- err.Error()
						return
					}
					if want := reference(t, key, mab); got != want {
						errs <- "key " + hex.EncodeToString(key) + ": " + string(got[:]) + ", want " + string(want[:])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	ciphers.mu.RLock()
	n := len(ciphers.m)
	ciphers.mu.RUnlock()
	if n > maxCachedKeys {
		t.Fatalf("cache holds %d keys, over %d", n, maxCachedKeys)
	}
	if _, err := UnionPayECB(make([]byte, 12), mab); err == nil {
		t.Fatal("a 12-byte key was accepted")
	}
}

func BenchmarkUnionPayECB(b *testing.B) {
	key := []byte("0123456789abcdef")
	mab := make([]byte, 120)
	for b.Loop() {
		if _, err := UnionPayECB(key, mab); err != nil {
			b.Fatal(err)
		}
	}
}
