//go:build race

package web_test

// raceEnabled: the race detector slows the end-to-end flows (real guests,
// bcrypt, Chromium) eightfold; `make test` runs them in its non-race pass.
const raceEnabled = true
