// Package alert sends findings and decisions to people by e-mail and to
// programs by webhook, batched into digests so that a storm of scans is a
// handful of messages and not a thousand.
//
// It owns the alert queue, the digest windows, the per-channel message cap,
// the delivery retries and the texts of the messages. It knows nothing of
// packets, detection internals or firewalls: it formats the findings and
// decisions it is handed (the daemon calls Finding, Ban and Watch) and
// never looks further.
//
// # Flow
//
// Finding, Ban and Watch never block: each event is added to the digest
// every enabled channel is collecting, which lists the first MaxListed (50)
// events in full and counts the rest by kind, so memory stays bounded
// however many events arrive. Digest (default 1m) after a digest's first
// event, it is sealed into one message: one mail, or one webhook POST
// carrying a JSON array. At most MaxPerHour messages a channel leave in any
// sliding hour, messages still waiting for delivery included, so a
// receiver back from an outage gets no more than that either; while the
// cap is reached the digest keeps collecting and goes out as soon as the
// cap allows. A message that cannot be delivered
// stays queued, in order, and is retried with exponential backoff (RetryMin
// doubling up to RetryMax, with jitter); when 100 messages wait, further
// events are collected into the one digest after them.
//
// # Templates
//
// The subject and body of a mail are Go text/template sources
// (Config.SubjectTemplate, Config.BodyTemplate; "" for the built-in ones,
// DefaultSubjectTemplate and DefaultBodyTemplate). Both see a Message:
//
//	Message.Host      string     this host's name
//	Message.First     time.Time  the first event in the message
//	Message.Last      time.Time  the last event in the message
//	Message.Total     int        events in the message, listed or not
//	Message.Bans      int        ban events (listed or not)
//	Message.Watches   int        watch events: scans not acted upon
//	Message.Findings  int        finding events
//	Message.Summary   string     "3 bans, 1 scan not acted upon"
//	Message.Events    []Event    the first 50 events, oldest first
//	Message.Unlisted  int        Total - len(Events)
//
//	Event.Kind        string     "ban", "watch" or "finding"
//	Event.Time        time.Time  when the event was reported
//	Event.Src         string     the source address
//	Event.Target      string     the decision's target (address or CIDR); "" for a finding
//	Event.HasFinding  bool       false for a ban made by hand: no evidence fields
//	Event.Verdict     string     "scan" or "suspicious"
//	Event.ScanType    string     "syn", "connect", "fin", "udp", ...
//	Event.Class       string     "vertical", "horizontal", "block", "distributed"
//	Event.Tool        string     "nmap", "masscan", ...; "" when unknown
//	Event.Ports       int        distinct ports contacted
//	Event.Hosts       int        distinct hosts contacted
//	Event.Saturated   bool       Ports and Hosts are lower bounds
//	Event.Attempts    int        connection attempts
//	Event.Packets     int        packets considered
//	Event.FirstSeen   time.Time
//	Event.LastSeen    time.Time
//	Event.Reason      string     the reason sentence
//	Event.Decision    string     "banned for 1h (offence 1)", "not acted upon: guard: default gateway"; "" for a finding
//	Event.Undo        string     "scanwarden unban 203.0.113.9" (bans)
//	Event.WouldBan    string     what would ban the source (watch decisions)
//	Event.Explain     string     "scanwarden explain 203.0.113.9"
//	Event.FindingID   string
//	Event.DecisionID  string
//
// Every string a template sees has been through report.Safe: text that came
// from the network cannot put terminal escapes or line breaks into a mail.
// Template functions: time (a time as "2006-01-02 15:04:05 UTC", "-" when
// zero), plural (plural 3 "ban" is "bans"), upper. Whatever the subject
// template produces, control characters (CR and LF among them) become
// spaces and it is cut to 200 characters, so no event can add a header.
//
// # Webhook
//
// The webhook receives a JSON array of objects, one per listed event, in
// the order they happened:
//
//	{"kind": "ban", "time": "...", "host": "web1",
//	 "finding": {... report.JSONFinding ...},
//	 "decision": {... decision.Decision ...},
//	 "action": "banned for 1h (offence 1)",
//	 "undo": "scanwarden unban 203.0.113.9"}
//
// "finding" is absent for a ban made by hand and "decision" for a finding
// event; "would_ban" replaces "undo" for watch decisions. When a message
// holds more events than it lists, a last element {"kind": "unlisted",
// "count": 950, "counts": {"finding": 950}} says how many and of what kind.
package alert
