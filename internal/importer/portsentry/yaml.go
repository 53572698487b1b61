package portsentry

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// result writes the YAML and checks it: it must pass config.Parse, the
// check `scanwarden config check` and the daemon run.
func (c *converter) result() (*Result, error) {
	if len(c.hooks) > 0 {
		c.set("hooks", hooksNode(c.hooks), "from "+hookSources(c.hooks))
	}
	out, err := importutil.Output(c.settings, c.header)
	if err != nil {
		return nil, err
	}
	res := c.res
	res.YAML = out
	res.Finish()
	return &res, nil
}

// header is the comment the file starts with: what it was converted from,
// when, and the report's summary.
func (c *converter) header(settings int) string {
	var h importutil.Header
	line := h.Line
	line("scanwarden configuration, converted from PortSentry's by `scanwarden import portsentry`")
	line("on %s.", c.in.Now.UTC().Format("2006-01-02 15:04 UTC"))
	line("")
	line("From:   %s (%s)", safe(c.in.ConfName), plural(len(c.cf.Entries), "key", "keys"))
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
	return h.Close(&c.res.Report, noteKeys, settings, "PortSentry key")
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
