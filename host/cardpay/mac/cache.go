package mac

import (
	"crypto/cipher"
	"sync"
)

// The ciphers of MAC keys are cached. A MAC working key changes only at
// sign-on, yet every message is MACed (and every answer verified) under it:
// building its TDES cipher each time costs three DES key schedules, more
// than the MAC itself. So UnionPayECB keeps the cipher of each key it has
// seen, up to maxCachedKeys (then it starts over: keys of old sign-ons
// drop out). The ciphers of crypto/des keep no state between blocks, so one
// is safe for concurrent use.
const maxCachedKeys = 64

// ciphers is the process's cache of MAC key ciphers: a pure function of the
// key bytes, so sharing it changes no result.
var ciphers = blockCache{m: map[string]cipher.Block{}}

type blockCache struct {
	mu sync.RWMutex
	m  map[string]cipher.Block // by key bytes
}

// get returns the cipher of key (DES for 8 bytes, TDES for 16), building
// it on first use.
func (c *blockCache) get(key []byte) (cipher.Block, error) {
	c.mu.RLock()
	b := c.m[string(key)]
	c.mu.RUnlock()
	if b != nil {
		return b, nil
	}
	b, err := block(key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedKeys {
		clear(c.m)
	}
	c.m[string(key)] = b
	c.mu.Unlock()
	return b, nil
}
