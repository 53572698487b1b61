// Package triage answers an abuse report: was it really a port scan, which
// connection attempts does it list and when, and which internal client or
// local process made them.
//
// It reads the report with the existing sensors (flow and abuse-report
// lines of internal/sensor/flowreport, kernel firewall lines of
// internal/sensor/kernlog, told apart by internal/sensor/input's sniffing),
// classifies every reported source with the same detector and the same code
// path as `scanwarden analyze` (internal/analyze), groups the reported
// packets into connection attempts the way the detector folds
// retransmissions, and looks each attempt up in the connection log through
// the Lookup interface. The result is a verdict with its reason, the
// clients behind the attempts, the assumptions made about the reporter's
// clock, and a draft reply for the abuse desk.
//
// Reports come from strangers. Input is streamed and bounded
// (Options.MaxBytes, 64 KiB lines); binary data is refused; every string
// that came from the report or from the log (file names, problem excerpts,
// process names) is escaped before it reaches the Result, so neither the
// text nor the JSON output can carry control bytes or terminal escapes.
// Nothing in a report is ever executed.
package triage
