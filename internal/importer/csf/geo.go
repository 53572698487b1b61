package csf

import (
	"fmt"
	"slices"
	"strings"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// Where the converted configuration expects the country database: the
// directory geoipupdate writes to (MaxMind), and a name for DB-IP's lite
// database in the same place. Both are .mmdb files, the format
// lists.geoip.database reads.
const (
	maxmindDB = "/var/lib/GeoIP/GeoLite2-Country.mmdb"
	dbipDB    = "/var/lib/GeoIP/dbip-country-lite.mmdb"
)

// countries converts CC_DENY, CC_ALLOW and CC_IGNORE into lists.geoip, with
// CC_SRC and MM_LICENSE_KEY, which said where CSF got its data.
func (c *converter) countries() {
	deny, allow, ignore := c.get("CC_DENY"), c.get("CC_ALLOW"), c.get("CC_IGNORE")
	denyCC, denySkip := ccList(deny)
	allowCC, allowSkip := ccList(allow)
	ignoreCC, ignoreSkip := ccList(ignore)
	allowAll := slices.Clone(allowCC)
	for _, cc := range ignoreCC {
		if !slices.Contains(allowAll, cc) {
			allowAll = append(allowAll, cc)
		}
	}
	src := c.get("CC_SRC")
	db := ""
	if len(denyCC)+len(allowAll) > 0 {
		db = dbipDB
		if src != nil && strings.TrimSpace(src.Value) == "1" {
			db = maxmindDB
		}
		from := "from CC_SRC: not set, DB-IP's database"
		if src != nil {
			from = fromValue(src) + " (1: MaxMind, 2: DB-IP); check the path"
		}
		c.set("lists.geoip.database", db, from)
	}
	if len(denyCC) > 0 {
		c.set("lists.geoip.deny", denyCC, fromValue(deny))
	}
	if len(allowAll) > 0 {
		c.set("lists.geoip.allow", allowAll, from(allow, ignore))
	}
	if deny != nil {
		if len(denyCC) == 0 && len(denySkip) == 0 {
			c.mapped(deny, "empty: no country is dropped (lists.geoip.deny: [], the default).")
		} else {
			c.ccNote(deny, fmt.Sprintf("lists.geoip.deny = [%s]: incoming traffic from these countries is dropped at the firewall, as CSF's CC_DENY did (incoming only, in both). scanwarden reads the countries' networks from a database file, lists.geoip.database (see CC_SRC).", strings.Join(denyCC, ", ")), denySkip, false)
		}
	}
	if allow != nil {
		if len(allowCC) == 0 && len(allowSkip) == 0 {
			c.mapped(allow, "empty: no country is let through.")
		} else {
			c.ccNote(allow, fmt.Sprintf("lists.geoip.allow gets [%s]: never banned. CSF's CC_ALLOW did more, letting these countries through every port of its firewall (its own warning: \"CC_ALLOW allows access through all ports\"); scanwarden opens nothing, it only never bans them.", strings.Join(allowCC, ", ")), allowSkip, true)
		}
	}
	if ignore != nil {
		if len(ignoreCC) == 0 && len(ignoreSkip) == 0 {
			c.mapped(ignore, "empty: lfd ignored no country.")
		} else {
			c.ccNote(ignore, fmt.Sprintf("lists.geoip.allow gets [%s]: never banned, as lfd never blocked these countries; scanwarden still detects and reports them.", strings.Join(ignoreCC, ", ")), ignoreSkip, false)
		}
	}
	if src != nil {
		switch {
		case db == "":
			c.unsupported(src, "not needed: no country list is converted, so lists.geoip.database stays empty. For scanwarden explain to name countries, point it at a country .mmdb file (MaxMind GeoLite2 or DB-IP lite).")
		case db == maxmindDB:
			c.changed(src, "lists.geoip.database = %s: CSF downloaded and refreshed MaxMind's data itself (every CC_INTERVAL days, with MM_LICENSE_KEY); scanwarden reads a MaxMind-format .mmdb file that you keep current. Install geoipupdate, give it your MaxMind account and key (/etc/GeoIP.conf, EditionIDs GeoLite2-Country) and it writes this file; run it from cron. Put the file there before starting scanwarden.", db)
		default:
			c.changed(src, "lists.geoip.database = %s: CSF downloaded DB-IP's (and ipdeny.com's) data itself every CC_INTERVAL days; scanwarden reads a MaxMind-format .mmdb file that you keep current. DB-IP's free \"IP to Country Lite\" comes in that format: download dbip-country-lite-YYYY-MM.mmdb.gz from db-ip.com each month, unpack it to this path (the name is this import's choice: change it if you like). Or use MaxMind's GeoLite2-Country with geoipupdate. Put the file there before starting scanwarden.", db)
		}
	}
	if e := c.get("MM_LICENSE_KEY"); e != nil {
		if strings.TrimSpace(e.Value) == "" {
			c.unsupported(e, "empty; scanwarden downloads no database anyway (see CC_SRC).")
		} else {
			c.changed(e, "not copied (it is a secret, and scanwarden downloads no database): put it, with your MaxMind account ID, in /etc/GeoIP.conf for geoipupdate, which keeps %s current.", maxmindDB)
		}
	}
}

// ccNote notes a country list, with what was skipped.
func (c *converter) ccNote(e *entry, text string, skipped []string, changed bool) {
	if len(skipped) > 0 {
		text += " Skipped: " + strings.Join(skipped, "; ") + "."
		changed = true
	}
	if changed {
		c.changed(e, "%s", text)
		return
	}
	c.mapped(e, "%s", text)
}

// ccList reads a country list as CSF does (blanks removed, split at
// commas): two letters are a country, upper-cased for scanwarden; ASnnnn, an
// autonomous system, which scanwarden's lists do not take; anything else
// CSF warned about and skipped.
func ccList(e *entry) (codes, skipped []string) {
	if e == nil {
		return nil, nil
	}
	v := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, e.Value)
	var asns, bad []string
	for _, cc := range strings.Split(v, ",") {
		up := strings.ToUpper(cc)
		switch {
		case cc == "":
		case len(cc) == 2 && up[0] >= 'A' && up[0] <= 'Z' && up[1] >= 'A' && up[1] <= 'Z':
			if !slices.Contains(codes, up) {
				codes = append(codes, up)
			}
		case len(up) > 2 && strings.HasPrefix(up, "AS") && strings.Trim(up[2:], "0123456789") == "":
			asns = append(asns, up)
		default:
			bad = append(bad, importutil.Quote(cc))
		}
	}
	if len(asns) > 0 {
		skipped = append(skipped, fmt.Sprintf("%s, autonomous systems, which scanwarden's country lists do not take (a blocklist feed of the AS's networks does the same)", strings.Join(asns, ", ")))
	}
	if len(bad) > 0 {
		skipped = append(skipped, fmt.Sprintf("%s, not country codes (CSF warned \"contains an invalid entry\" and skipped them too)", strings.Join(bad, ", ")))
	}
	return codes, skipped
}
