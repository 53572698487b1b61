//go:build race

package follow

// raceEnabled says the race detector is on. It makes parsing about ten
// times slower, so tests that push tens of thousands of lines push fewer.
const raceEnabled = true
