package portsentry

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/scanwarden/scanwarden/internal/config"
)

// result writes the YAML and checks it: it must pass config.Parse, the
// check `scanwarden config check` and the daemon run.
func (c *converter) result() (*Result, error) {
	defaults, err := defaultConfig()
	if err != nil {
		return nil, err
	}
	if len(c.hooks) > 0 {
		c.set("hooks", hooksNode(c.hooks), "from "+hookSources(c.hooks))
	}
	var keep []setting
	for _, s := range c.settings {
		if !isDefault(s, defaults) {
			keep = append(keep, s)
		}
	}
	body, err := marshal(keep)
	if err != nil {
		return nil, err
	}
	out := append([]byte(c.header(len(keep))), body...)
	if _, err := config.Parse(out, "the converted configuration"); err != nil {
		return nil, fmt.Errorf("the converted configuration fails its own check (a bug in the importer, please report it): %w", err)
	}
	res := c.res
	res.YAML = out
	for _, sec := range []*[]Note{&res.Mapped, &res.Changed, &res.Unsupported} {
		if *sec == nil {
			*sec = []Note{} // [] in JSON, not null
		}
	}
	for _, sec := range [][]Note{res.Mapped, res.Changed, res.Unsupported} {
		slices.SortStableFunc(sec, func(a, b Note) int { return lineOrder(a) - lineOrder(b) })
	}
	return &res, nil
}

// defaultConfig is scanwarden's default configuration, read once.
var defaultConfig = sync.OnceValues(func() (*config.Config, error) { return config.Parse(nil, "") })

// lineOrder sorts notes by line, those without one (keys not set) last.
func lineOrder(n Note) int {
	if n.Line == 0 {
		return 1 << 30
	}
	return n.Line
}

// isDefault reports whether a setting holds the default value, so that it
// can be left out: its YAML is decoded into the type of the configuration
// field it names (by yaml tags), as config.Parse would, and compared with
// that field of the defaults.
func isDefault(s setting, defaults *config.Config) bool {
	field, ok := fieldAt(reflect.ValueOf(defaults).Elem(), s.path)
	if !ok {
		return false
	}
	n, err := valueNode(s.value)
	if err != nil {
		return false
	}
	v := reflect.New(field.Type())
	if err := n.Decode(v.Interface()); err != nil {
		return false
	}
	return reflect.DeepEqual(v.Elem().Interface(), field.Interface())
}

// fieldAt finds the field a key path names, by the fields' yaml tags.
func fieldAt(v reflect.Value, path []string) (reflect.Value, bool) {
	for _, key := range path {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		found := false
		for i := 0; i < v.NumField(); i++ {
			if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag == key {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
	}
	return v, true
}

// header is the comment the file starts with: what it was converted from,
// when, and the report's summary.
func (c *converter) header(settings int) string {
	var b strings.Builder
	line := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		if s == "" {
			b.WriteString("#\n")
			return
		}
		b.WriteString("# " + s + "\n")
	}
	line("scanwarden configuration, converted from PortSentry's by `scanwarden import portsentry`")
	line("on %s.", c.in.Now.UTC().Format("2006-01-02 15:04 UTC"))
	line("")
	line("From:   %s (%s)", safe(c.in.ConfName), plural(len(c.cf.entries), "key", "keys"))
	switch {
	case c.ign == nil:
		line("Ignore: none")
	case c.ign.err != "":
		line("Ignore: %s, not read: %s", safe(c.ign.name), safe(c.ign.err))
	default:
		line("Ignore: %s (%s, %d in policy.allow)", safe(c.ign.name), plural(c.ign.entries, "entry", "entries"), c.ign.allowed)
	}
	if len(c.in.Modes) > 0 {
		line("Modes:  %s (--mode)", strings.Join(c.in.Modes, ", "))
	}
	line("Report: %s.", c.res.Summary())
	for _, sec := range []struct {
		title string
		notes []Note
	}{{"Changed meaning", c.res.Changed}, {"No equivalent", c.res.Unsupported}} {
		if keys := noteKeys(sec.notes); keys != "" {
			line("  %s: %s.", sec.title, keys)
		}
	}
	line("The import printed the report key by key; run it again to see it.")
	line("")
	if settings == 0 {
		line("Every setting it converted to is scanwarden's default.")
	} else {
		line("Below: only the settings that differ from scanwarden's defaults, each under")
		line("the PortSentry key it came from (`scanwarden config default` prints them all).")
	}
	line("Check: scanwarden config check FILE")
	line("Try:   scanwarden run --config FILE --dry-run")
	b.WriteString("\n")
	return b.String()
}

// noteKeys lists the keys of a section, briefly.
func noteKeys(notes []Note) string {
	var keys []string
	lines := 0
	for _, n := range notes {
		if n.Key == "" {
			lines++
			continue
		}
		if len(keys) == 12 {
			keys = append(keys, "...")
			break
		}
		keys = append(keys, n.Key)
	}
	if lines > 0 {
		keys = append(keys, fmt.Sprintf("%d lines that are not settings", lines))
	}
	return strings.Join(keys, ", ")
}

// safe makes a name fit for a comment line: anything unprintable escaped.
func safe(s string) string {
	q := quote(s)
	if q == `"`+s+`"` {
		return s
	}
	return q
}

// marshal writes settings as one YAML mapping, in the order of the default
// configuration, each key under its comment.
func marshal(settings []setting) ([]byte, error) {
	if len(settings) == 0 {
		return nil, nil
	}
	order := defaultOrder()
	sorted := slices.Clone(settings)
	slices.SortStableFunc(sorted, func(a, b setting) int { return slices.Compare(order.of(a.path), order.of(b.path)) })
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, s := range sorted {
		m := root
		for _, k := range s.path[:len(s.path)-1] {
			m = child(m, k)
		}
		v, err := valueNode(s.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(s.path, "."), err)
		}
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: s.path[len(s.path)-1], HeadComment: s.from}
		m.Content = append(m.Content, key, v)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// child finds or adds the mapping under key k.
func child(m *yaml.Node, k string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	n := &yaml.Node{Kind: yaml.MappingNode}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, n)
	return n
}

func valueNode(v any) (*yaml.Node, error) {
	if n, ok := v.(*yaml.Node); ok {
		return n, nil
	}
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	if _, ok := v.(config.PortList); ok {
		n.Style = yaml.FlowStyle
	}
	return n, nil
}

// allowNode is policy.allow, each entry with the line it came from.
func allowNode(es []ignoreEntry, name string) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, e := range es {
		comment := fmt.Sprintf("%s line %d", safe(name), e.Line)
		if e.Remark != "" {
			comment += ": " + e.Remark
		}
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: e.Prefix.String(), LineComment: comment})
	}
	return seq
}

// hooksNode is the hooks list.
func hooksNode(hs []hookOut) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, h := range hs {
		cmd := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, a := range h.argv {
			cmd.Content = append(cmd.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: a, Style: yaml.DoubleQuotedStyle})
		}
		item := &yaml.Node{Kind: yaml.MappingNode, HeadComment: h.from}
		item.Content = append(item.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: "command"}, cmd,
			&yaml.Node{Kind: yaml.ScalarNode, Value: "on"}, &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle,
				Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "ban"}}})
		if h.order != "" {
			item.Content = append(item.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "order"}, &yaml.Node{Kind: yaml.ScalarNode, Value: h.order})
		}
		seq.Content = append(seq.Content, item)
	}
	return seq
}

func hookSources(hs []hookOut) string {
	var keys []string
	for _, h := range hs {
		k, _, _ := strings.Cut(strings.TrimPrefix(h.from, "from "), " ")
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return strings.Join(keys, " and ")
}

// keyOrder is the position of every key path in the default configuration,
// so the output follows `scanwarden config default`.
type keyOrder map[string]int

func (o keyOrder) of(path []string) []int {
	idx := make([]int, len(path))
	for i := range path {
		p, ok := o[strings.Join(path[:i+1], ".")]
		if !ok {
			p = 1 << 20
		}
		idx[i] = p
	}
	return idx
}

var defaultOrder = sync.OnceValue(func() keyOrder {
	var doc yaml.Node
	o := keyOrder{}
	if yaml.Unmarshal(config.Default(), &doc) != nil || len(doc.Content) == 0 {
		return o
	}
	n := 0
	var walk func(m *yaml.Node, prefix string)
	walk = func(m *yaml.Node, prefix string) {
		if m.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			p := prefix + m.Content[i].Value
			o[p] = n
			n++
			walk(m.Content[i+1], p+".")
		}
	}
	walk(doc.Content[0], "")
	return o
})

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
