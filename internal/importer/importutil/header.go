package importutil

import (
	"fmt"
	"strings"
)

// Output writes the settings that differ from scanwarden's defaults as
// YAML, after the header made for that many of them, and checks the whole
// (Check): an importer never hands out a file that fails config.Parse.
func Output(settings Settings, header func(settings int) string) ([]byte, error) {
	keep, err := settings.NonDefault()
	if err != nil {
		return nil, err
	}
	body, err := Marshal(keep)
	if err != nil {
		return nil, err
	}
	out := append([]byte(header(len(keep))), body...)
	if err := Check(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Header builds the comment a converted file starts with, a line at a
// time.
type Header struct {
	strings.Builder
}

// Line writes one comment line, "#" alone when it is empty.
func (h *Header) Line(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if s == "" {
		h.WriteString("#\n")
		return
	}
	h.WriteString("# " + s + "\n")
}

// Close ends the header and returns it: the report's summary with the keys
// (listed by keys) of the two sections to read, what the file holds of
// settings converted, and how to check and try it. source is what each
// setting's comment names: "PortSentry key".
func (h *Header) Close(r *Report, keys func([]Note) string, settings int, source string) string {
	h.Line("Report: %s.", r.Summary())
	for _, sec := range []struct {
		title string
		notes []Note
	}{{"Changed meaning", r.Changed}, {"No equivalent", r.Unsupported}} {
		if k := keys(sec.notes); k != "" {
			h.Line("  %s: %s.", sec.title, k)
		}
	}
	h.Line("The import printed the report key by key; run it again to see it.")
	h.Line("")
	if settings == 0 {
		h.Line("Every setting it converted to is scanwarden's default.")
	} else {
		h.Line("Below: only the settings that differ from scanwarden's defaults, each under")
		h.Line("the %s it came from (`scanwarden config default` prints them all).", source)
	}
	h.Line("Check: scanwarden config check FILE")
	h.Line("Try:   scanwarden run --config FILE --dry-run")
	h.WriteString("\n")
	return h.String()
}
