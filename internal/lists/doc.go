// Package lists turns outside sources into prefix lists: blocklist feeds,
// dynamic-DNS host names for the allow list, and countries.
//
//   - ParseFeed reads a blocklist (addresses, CIDRs, ranges, Spamhaus DROP
//     and its JSON form, DShield's block.txt) into the fewest sorted,
//     disjoint prefixes, refusing entries too wide to be meant.
//     ParseCSFBlocklists reads CSF's list of feeds.
//   - Feed.Load reads one feed from a file or over HTTP(S); Runner keeps
//     every feed current and hands each new list to a callback, never an
//     empty one because a fetch failed.
//   - DynDNS re-resolves host names and reports their addresses.
//   - GeoIP maps addresses to countries and countries to prefixes, from a
//     MaxMind-format database.
//
// The package knows nothing of firewalls, detection or policy: it produces
// prefix lists and lookups, and the daemon decides what they block or
// allow (the nftables enforcer loads them into interval sets, which is why
// the lists are merged: an interval set rejects overlapping elements).
package lists
