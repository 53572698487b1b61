package nflog

import (
	"testing"

	"github.com/scanwarden/scanwarden/internal/host/netnstest"
)

// Real-kernel test helpers: internal/host/netnstest's namespaces, named
// swnfl-… so a leftover says which tests left it.

type netns = netnstest.NS

func newNetns(t testing.TB) *netns { return netnstest.NewPrefixed(t, "swnfl-") }

// requireRoot skips the test unless it runs as root with ip, nft and the
// given tools installed.
func requireRoot(t testing.TB, tools ...string) {
	t.Helper()
	netnstest.Require(t, append([]string{"nft"}, tools...)...)
}
