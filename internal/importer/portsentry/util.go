package portsentry

import "github.com/scanwarden/scanwarden/internal/importer/importutil"

// The report helpers shared with the other importers.
var (
	quote  = importutil.Quote
	safe   = importutil.Safe
	plural = importutil.Plural
	upper  = importutil.Upper
)

// reportWidth is where report lines are wrapped.
const reportWidth = importutil.ReportWidth
