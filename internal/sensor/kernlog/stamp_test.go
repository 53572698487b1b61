package kernlog

import (
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin for the daylight-saving cases, on any test host
)

func TestStamps(t *testing.T) {
	plus2 := time.FixedZone("EET", 2*3600)
	ps := &Parser{Location: plus2, Now: func() time.Time { return testNow }, Boot: testBoot}
	for _, tc := range []struct {
		stamp string
		want  time.Time // zero: not a stamp
	}{
		{"2026-11-21T05:51:48Z", utc("2026-11-21T05:51:48Z")},
		{"2026-11-21T05:51:48.1Z", utc("2026-11-21T05:51:48.1Z")},
		{"2026-11-21T05:51:48.123456789-03:30", utc("2026-11-21T09:21:48.123456789Z")},
		{"2026-11-21T05:51:48+0530", utc("2026-11-21T00:21:48Z")},
		{"2026-11-21T05:51:48+05", utc("2026-11-21T00:51:48Z")},
		{"2026-11-21T05:51:48", time.Date(2026, 11, 21, 5, 51, 48, 0, plus2)},
		{"2026-11-21T05:51:48,5", time.Date(2026, 11, 21, 5, 51, 48, 5e8, plus2)},
		{"Nov 21 05:51:48", time.Date(2026, 11, 21, 5, 51, 48, 0, plus2)},
		{"Nov 21 05:51:48.000001", time.Date(2026, 11, 21, 5, 51, 48, 1000, plus2)},
		{"Sat 2026-11-21 05:51:48 EET", time.Date(2026, 11, 21, 5, 51, 48, 0, plus2)},
		{"Sat 2026-11-21 05:51:48 GMT", utc("2026-11-21T05:51:48Z")},
		{"[Sat Nov 21 05:51:48 2026]", time.Date(2026, 11, 21, 5, 51, 48, 0, plus2)},
		{"[    0.000001]", testBoot.Add(time.Microsecond)},
		{"[999999999.999999]", testBoot.Add(999999999*time.Second + 999999*time.Microsecond)},
		{"<6>[ 12.5]", testBoot.Add(12500 * time.Millisecond)},
		{"6,1,0,-;", testBoot},
		{"14,99999,1500000,c;", testBoot.Add(1500 * time.Millisecond)},
		{"1795241094.407065", time.Unix(1795241094, 407065000)},

		{"", time.Time{}},
		{"hello", time.Time{}},
		{"Nov", time.Time{}},
		{"Nov 21", time.Time{}},
		{"Nov 21 05:51", time.Time{}},
		{"Nov 21 05:51:48x", time.Time{}},
		{"Nov 32 05:51:48", time.Time{}},
		{"nov 21 05:51:48", time.Time{}},
		{"Noo 21 05:51:48", time.Time{}},
		{"Nov 21 24:00:00", time.Time{}},
		{"Nov 21 05:60:00", time.Time{}},
		{"Nov 21 05:51:48.", time.Time{}},
		{"Nov 21 05:51:48.1234567890", time.Time{}},
		{"2026-13-01T00:00:00Z", time.Time{}},
		{"0001-01-01 00:00:00", time.Time{}},
		{"1969-12-31T23:59:59Z", time.Time{}},
		{"[Mon Jan  1 00:00:00 0001]", time.Time{}},
		{"2026-11-21T05:51:48+25:00", time.Time{}},
		{"2026-11-21T05:51:48+05:61", time.Time{}},
		{"2026-11-21", time.Time{}},
		{"Sat 2026-11-21 05:51:48", time.Time{}},
		{"Sat 2026-11-21 05:51:48 utc", time.Time{}},
		{"Sat 2026-11-21 05:51:48 TOOLONGZONE", time.Time{}},
		{"[12.5", time.Time{}},
		{"[12]", time.Time{}},
		{"[1234567890.5]", time.Time{}},
		{"[ 12.5]x", time.Time{}},
		{"[Sat Nov 31 05:51:48 2026]", time.Time{}},
		{"[Xyz Nov 21 05:51:48 2026]", time.Time{}},
		{"6,1,2;", time.Time{}},
		{"6,1,2,- ;", time.Time{}},
		{"6,1,9999999999999999,-;", time.Time{}},
		{"12345.5", time.Time{}},
		{"1795241094", time.Time{}},
		{"<999999>Nov 21 05:51:48", time.Time{}},
		{"<4>", time.Time{}},
	} {
		b := []byte(tc.stamp)
		got, err := ps.stamp(b)
		if tc.want.IsZero() {
			if err == nil {
				t.Errorf("stamp(%q) = %v, want no stamp", tc.stamp, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("stamp(%q) = %v, %v; want %v", tc.stamp, got, err, tc.want)
		}
		if got2, err := ps.stamp(append(b, " kernel: "...)); err != nil || !got2.Equal(got) {
			t.Errorf("stamp(%q + \" kernel: \") = %v, %v; want %v", tc.stamp, got2, err, got)
		}
	}
}

func TestYearInference(t *testing.T) {
	for _, tc := range []struct {
		now, stamp, want string
	}{
		{"2026-11-21T07:00:00Z", "Nov 21 05:51:48", "2026-11-21T05:51:48Z"},
		// A December line read in January belongs to last year.
		{"2027-01-02T10:00:00Z", "Dec 31 23:59:59", "2026-12-31T23:59:59Z"},
		{"2027-01-01T00:00:05Z", "Dec 31 23:59:58", "2026-12-31T23:59:58Z"},
		// Up to a day ahead of the clock is skew, not last year.
		{"2026-11-21T07:00:00Z", "Nov 22 06:59:00", "2026-11-22T06:59:00Z"},
		{"2026-12-31T23:00:00Z", "Jan  1 00:30:00", "2026-01-01T00:30:00Z"},
		{"2026-11-21T07:00:00Z", "Nov 22 07:00:01", "2025-11-22T07:00:01Z"},
		{"2026-11-21T07:00:00Z", "Nov 23 05:00:00", "2025-11-23T05:00:00Z"},
		// Feb 29 goes back to the last leap year.
		{"2027-03-01T00:00:00Z", "Feb 29 12:00:00", "2024-02-29T12:00:00Z"},
		{"2028-03-01T00:00:00Z", "Feb 29 12:00:00", "2028-02-29T12:00:00Z"},
		{"2028-02-28T12:00:00Z", "Feb 29 12:00:00", "2028-02-29T12:00:00Z"},
	} {
		now := utc(tc.now)
		ps := &Parser{Location: time.UTC, Now: func() time.Time { return now }}
		got, err := ps.stamp([]byte(tc.stamp))
		if err != nil || !got.Equal(utc(tc.want)) {
			t.Errorf("now %s: stamp(%q) = %v, %v; want %s", tc.now, tc.stamp, got, err, tc.want)
		}
	}
}

func TestYearInferenceUsesLocation(t *testing.T) {
	// 23:30 on Dec 31 in UTC-10 is already January 1 in UTC: the year comes
	// from the clock read in the log's zone.
	hst := time.FixedZone("HST", -10*3600)
	now := utc("2027-01-01T09:45:00Z") // 23:45 Dec 31 in HST
	ps := &Parser{Location: hst, Now: func() time.Time { return now }}
	got, err := ps.stamp([]byte("Dec 31 23:30:00"))
	if want := time.Date(2026, 12, 31, 23, 30, 0, 0, hst); err != nil || !got.Equal(want) {
		t.Errorf("stamp = %v, %v; want %v", got, err, want)
	}
}

func TestShortFullDaylightSavingFold(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	ps := &Parser{Location: berlin}
	// 02:30 happens twice on 2026-10-25: first in CEST, then in CET.
	cest, err1 := ps.stamp([]byte("Sun 2026-10-25 02:30:00 CEST"))
	cet, err2 := ps.stamp([]byte("Sun 2026-10-25 02:30:00 CET"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !cest.Equal(utc("2026-10-25T00:30:00Z")) || !cet.Equal(utc("2026-10-25T01:30:00Z")) {
		t.Errorf("CEST %v, CET %v; want 00:30 and 01:30 UTC", cest.UTC(), cet.UTC())
	}
}

func TestRelative(t *testing.T) {
	var ps Parser // no Boot
	if ps.Relative() {
		t.Fatal("Relative before any line")
	}
	got, err := ps.stamp([]byte("6,1,774841128,-;"))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(0, 0).Add(774841128 * time.Microsecond); !got.Equal(want) {
		t.Errorf("kmsg stamp without Boot = %v, want %v", got, want)
	}
	if !ps.Relative() {
		t.Error("Relative() = false after a boot-relative stamp without Boot")
	}
	ps2 := Parser{Boot: testBoot}
	if _, err := ps2.stamp([]byte("[ 1.0]")); err != nil || ps2.Relative() {
		t.Errorf("with Boot: err %v, Relative %v; want nil, false", err, ps2.Relative())
	}
}

func TestParseBtime(t *testing.T) {
	got, err := parseBtime([]byte("cpu  1 2 3\nintr 5\nbtime 1795240264\nprocesses 9\n"))
	if err != nil || !got.Equal(time.Unix(1795240264, 0)) {
		t.Errorf("parseBtime = %v, %v", got, err)
	}
	for _, bad := range []string{"", "cpu 1\n", "btime x\n", "btime -5\n"} {
		if _, err := parseBtime([]byte(bad)); err == nil {
			t.Errorf("parseBtime(%q) succeeded", bad)
		}
	}
}
