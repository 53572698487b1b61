package portsentry

import (
	"fmt"
	"path"
	"strings"
)

// PortSentry hands KILL_ROUTE and KILL_RUN_CMD to system(3), that is to
// /bin/sh -c, after replacing $TARGET$, $PORT$ and $MODE$ in the text.
// scanwarden runs hooks without a shell (internal/enforce/hook): an argument
// vector, exec'd directly, placeholders replaced inside each argument. So a
// command converts when sh would have split it into words and done nothing
// else: blanks separate words, '...' and "..." quote, a backslash escapes
// one character. Anything that needs the shell itself (pipes, lists,
// redirections, substitutions, variables, globs) is refused, with what it
// was, so the user can put the command in a script of their own.

// shellError says why a command needs a shell.
type shellError struct {
	What string // "a pipe (|)", ...
	At   int    // byte offset in the command
}

func (e *shellError) Error() string {
	return fmt.Sprintf("it needs a shell: %s at byte %d", e.What, e.At+1)
}

// psPlaceholders are PortSentry's; scanwarden's hooks know them too.
var psPlaceholders = []string{"$TARGET$", "$PORT$", "$MODE$"}

// splitArgv splits a command as sh would, refusing whatever only a shell
// can do.
func splitArgv(cmd string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	end := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	fail := func(what string, at int) ([]string, error) { return nil, &shellError{what, at} }
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch c {
		case ' ', '\t':
			end()
		case '\'':
			j := strings.IndexByte(cmd[i+1:], '\'')
			if j < 0 {
				return fail("an unterminated quote (')", i)
			}
			cur.WriteString(cmd[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case '"':
			j, err := doubleQuoted(cmd, i+1, &cur)
			if err != nil {
				return nil, err
			}
			inWord = true
			i = j
		case '\\':
			if i+1 == len(cmd) {
				return fail("a backslash at the end", i)
			}
			cur.WriteByte(cmd[i+1])
			inWord = true
			i++
		case '$':
			n, err := dollar(cmd, i)
			if err != nil {
				return nil, err
			}
			cur.WriteString(cmd[i : i+n])
			inWord = true
			i += n - 1
		default:
			if what := special(c, !inWord, len(words) == 0); what != "" {
				return fail(what, i)
			}
			cur.WriteByte(c)
			inWord = true
		}
	}
	end()
	if len(words) == 0 {
		return nil, fmt.Errorf("the command is empty")
	}
	if name, _, ok := strings.Cut(words[0], "="); ok && isName(name) {
		return fail("a variable assignment before the command ("+name+"=...)", strings.Index(cmd, name))
	}
	return words, nil
}

// doubleQuoted reads "..." from cmd[i:] (after the opening quote) into cur
// and returns the index of the closing quote.
func doubleQuoted(cmd string, i int, cur *strings.Builder) (int, error) {
	for ; i < len(cmd); i++ {
		switch c := cmd[i]; c {
		case '"':
			return i, nil
		case '\\':
			if i+1 < len(cmd) && strings.IndexByte("$`\"\\", cmd[i+1]) >= 0 {
				cur.WriteByte(cmd[i+1])
				i++
			} else {
				cur.WriteByte(c)
			}
		case '`':
			return 0, &shellError{"a command substitution (`...`)", i}
		case '$':
			n, err := dollar(cmd, i)
			if err != nil {
				return 0, err
			}
			cur.WriteString(cmd[i : i+n])
			i += n - 1
		default:
			cur.WriteByte(c)
		}
	}
	return 0, &shellError{`an unterminated quote (")`, len(cmd) - 1}
}

// dollar reads a '$' at cmd[i]: a placeholder (kept as written, for the
// hook to replace), a lone dollar sign (literal to sh too), or an
// expansion, which needs a shell. It returns how many bytes to keep.
func dollar(cmd string, i int) (int, error) {
	for _, p := range psPlaceholders {
		if strings.HasPrefix(cmd[i:], p) {
			return len(p), nil
		}
	}
	if i+1 == len(cmd) {
		return 1, nil
	}
	switch c := cmd[i+1]; {
	case c == '(':
		return 0, &shellError{"a command substitution ($(...))", i}
	case c == '{' || c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		strings.IndexByte("@*#?$!-", c) >= 0:
		return 0, &shellError{"a shell variable ($" + string(c) + "...): PortSentry's placeholders are $TARGET$, $PORT$ and $MODE$", i}
	}
	return 1, nil
}

// special names what an unquoted byte means to sh, or "" for nothing.
func special(c byte, wordStart, firstWord bool) string {
	switch c {
	case '|':
		return "a pipe (|)"
	case ';':
		return "a command separator (;)"
	case '&':
		return "a list or background job (&, &&)"
	case '<', '>':
		return "a redirection (< or >)"
	case '(', ')':
		return "a subshell (parentheses)"
	case '`':
		return "a command substitution (`...`)"
	case '*', '?', '[':
		return "a file name pattern (*, ?, [)"
	case '\n', '\r':
		return "a line break"
	}
	if wordStart {
		switch {
		case c == '~':
			return "a home directory (~)"
		case c == '#':
			return "a comment (#)"
		case c == '!' && firstWord:
			return "a negation (!)"
		}
	}
	return ""
}

func isName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isKeyByte(s[i]) {
			return false
		}
	}
	return true
}

// hookArgv converts a command to a hook's argument vector: split as sh
// would, the program an absolute path without placeholders.
func hookArgv(cmd string) ([]string, error) {
	argv, err := splitArgv(cmd)
	if err != nil {
		return nil, err
	}
	prog := argv[0]
	switch {
	case strings.Contains(prog, "$"):
		return nil, fmt.Errorf("the program %s is chosen by a placeholder, which scanwarden does not allow", quote(prog))
	case !path.IsAbs(prog):
		return nil, fmt.Errorf("the program %s is not an absolute path (scanwarden runs hooks without a PATH search); write its full path, e.g. %s", quote(prog), quote("/usr/bin/"+path.Base(prog)))
	}
	return argv, nil
}

// commandWords splits a command loosely, for recognising what it runs
// (firewall, route): blanks, quotes and shell operators all separate words.
func commandWords(cmd string) []string {
	return strings.FieldsFunc(cmd, func(r rune) bool {
		return r == ' ' || r == '\t' || strings.ContainsRune("'\"`;|&()<>", r)
	})
}
