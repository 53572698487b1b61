package importutil

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

// Setting is one value of a converted configuration and the comment above
// it.
type Setting struct {
	// Path is the key path: ["policy", "ban_time"].
	Path []string
	// Value is a Go value of the field's type (or one that encodes to the
	// same YAML), or a *yaml.Node.
	Value any
	// From is the comment: "from PS_BLOCK_TIME (line 12)".
	From string
}

// Settings are the values of a conversion, in the order they were set.
type Settings []Setting

// Set adds a setting. A second setting of the same key replaces the value
// and names both sources in the comment ("from A (line 1) and B (line 2)").
func (s *Settings) Set(path string, value any, from string) {
	p := strings.Split(path, ".")
	for i := range *s {
		if slices.Equal((*s)[i].Path, p) {
			(*s)[i].Value = value
			(*s)[i].From += " and " + strings.TrimPrefix(from, "from ")
			return
		}
	}
	*s = append(*s, Setting{p, value, from})
}

// Get returns the value set for a key path, if any.
func (s Settings) Get(path string) (any, bool) {
	p := strings.Split(path, ".")
	for _, st := range s {
		if slices.Equal(st.Path, p) {
			return st.Value, true
		}
	}
	return nil, false
}

// DefaultConfig is scanwarden's default configuration, read once.
var DefaultConfig = sync.OnceValues(func() (*config.Config, error) { return config.Parse(nil, "") })

// NonDefault returns the settings that differ from scanwarden's defaults:
// the others can be left out of the file.
func (s Settings) NonDefault() (Settings, error) {
	defaults, err := DefaultConfig()
	if err != nil {
		return nil, err
	}
	var keep Settings
	for _, st := range s {
		if !IsDefault(st, defaults) {
			keep = append(keep, st)
		}
	}
	return keep, nil
}

// IsDefault reports whether a setting holds the default value: its YAML is
// decoded into the type of the configuration field it names (by yaml tags),
// as config.Parse would, and compared with that field of the defaults.
func IsDefault(s Setting, defaults *config.Config) bool {
	field, ok := FieldAt(reflect.ValueOf(defaults).Elem(), s.Path)
	if !ok {
		return false
	}
	n, err := ValueNode(s.Value)
	if err != nil {
		return false
	}
	v := reflect.New(field.Type())
	if err := n.Decode(v.Interface()); err != nil {
		return false
	}
	return reflect.DeepEqual(v.Elem().Interface(), field.Interface())
}

// FieldAt finds the field a key path names, by the fields' yaml tags.
func FieldAt(v reflect.Value, path []string) (reflect.Value, bool) {
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

// Marshal writes settings as one YAML mapping, in the order of the default
// configuration (`scanwarden config default`), each key under its comment.
func Marshal(settings Settings) ([]byte, error) {
	if len(settings) == 0 {
		return nil, nil
	}
	order := defaultOrder()
	sorted := slices.Clone(settings)
	slices.SortStableFunc(sorted, func(a, b Setting) int { return slices.Compare(order.of(a.Path), order.of(b.Path)) })
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, s := range sorted {
		m := root
		for _, k := range s.Path[:len(s.Path)-1] {
			m = child(m, k)
		}
		v, err := ValueNode(s.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(s.Path, "."), err)
		}
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: s.Path[len(s.Path)-1], HeadComment: s.From}
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

// Check runs the check `scanwarden config check` and the daemon run on a
// converted configuration. An importer must never hand out a file that
// fails it: the error says so.
func Check(out []byte) error {
	if _, err := config.Parse(out, "the converted configuration"); err != nil {
		return fmt.Errorf("the converted configuration fails its own check (a bug in the importer, please report it): %w", err)
	}
	return nil
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

// ValueNode encodes a setting's value (a *yaml.Node as it is); port lists
// and lists of strings are written in flow style, [22, 80, 6660-6670].
func ValueNode(v any) (*yaml.Node, error) {
	if n, ok := v.(*yaml.Node); ok {
		return n, nil
	}
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	switch v.(type) {
	case config.PortList, []string:
		n.Style = yaml.FlowStyle
	}
	return n, nil
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
