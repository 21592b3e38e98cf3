package promtext

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrSyntax wraps every Parse error.
var ErrSyntax = errors.New("promtext: syntax error")

// Family is a parsed metric family.
type Family struct {
	Name, Help string
	Type       Type
	Samples    []ParsedSample
}

// ParsedSample is one parsed sample.
type ParsedSample struct {
	Labels map[string]string
	Value  float64
}

// Get returns the value of the sample whose labels include every given
// pair (L-style name, value list), and whether there is one.
func (f Family) Get(pairs ...string) (float64, bool) {
	for _, s := range f.Samples {
		ok := true
		for i := 0; i+1 < len(pairs); i += 2 {
			if s.Labels[pairs[i]] != pairs[i+1] {
				ok = false
				break
			}
		}
		if ok {
			return s.Value, true
		}
	}
	return 0, false
}

// Parse reads the text format strictly, for tests and tools: every sample
// must belong to a family announced by a TYPE line before it, names and
// labels must be well formed, and no family may appear twice. Errors wrap
// ErrSyntax and name the line.
func Parse(r io.Reader) (map[string]*Family, error) {
	fams := map[string]*Family{}
	var cur *Family
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(splitLF) // the format ends lines with \n only; a \r is content
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: line %d %q: %s", ErrSyntax, n, line, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "# HELP "), strings.HasPrefix(line, "# TYPE "):
			f := strings.SplitN(line[7:], " ", 2)
			if len(f) != 2 || !validName(f[0], true) {
				return nil, bad("malformed")
			}
			fam := fams[f[0]]
			if fam == nil {
				fam = &Family{Name: f[0]}
				fams[f[0]] = fam
			} else if cur == nil || cur.Name != f[0] {
				return nil, bad("family %s appears twice", f[0])
			}
			cur = fam
			if line[2] == 'H' {
				help, err := unescape(f[1], false)
				if err != nil {
					return nil, bad("%v", err)
				}
				fam.Help = help
			} else {
				switch t := Type(f[1]); t {
				case Counter, Gauge, "histogram", "summary", "untyped":
					fam.Type = t
				default:
					return nil, bad("unknown type")
				}
			}
		case strings.HasPrefix(line, "#"):
			continue // a comment
		default:
			name, labels, value, err := parseSample(line)
			if err != nil {
				return nil, bad("%v", err)
			}
			if cur == nil || cur.Type == "" || name != cur.Name {
				return nil, bad("sample outside its family's TYPE")
			}
			cur.Samples = append(cur.Samples, ParsedSample{Labels: labels, Value: value})
		}
	}
	return fams, sc.Err()
}

func parseSample(line string) (string, map[string]string, float64, error) {
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, 0, errors.New("no value")
	}
	name, rest := line[:i], line[i:]
	if !validName(name, true) {
		return "", nil, 0, errors.New("bad metric name")
	}
	labels := map[string]string{}
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 || !validName(rest[:eq], false) {
				return "", nil, 0, errors.New("bad label name")
			}
			ln := rest[:eq]
			rest = rest[eq+2:]
			var v strings.Builder
			closed := false
			for j := 0; j < len(rest); j++ {
				c := rest[j]
				if c == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case '\\', '"':
						v.WriteByte(rest[j])
					case 'n':
						v.WriteByte('\n')
					default:
						return "", nil, 0, errors.New("bad escape in label value")
					}
					continue
				}
				if c == '"' {
					rest = rest[j+1:]
					closed = true
					break
				}
				v.WriteByte(c)
			}
			if !closed {
				return "", nil, 0, errors.New("unterminated label value")
			}
			if _, dup := labels[ln]; dup {
				return "", nil, 0, errors.New("duplicate label")
			}
			labels[ln] = v.String()
			rest = strings.TrimPrefix(rest, ",")
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 {
		return "", nil, 0, errors.New("want a value and an optional timestamp")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("bad value: %v", err)
	}
	return name, labels, v, nil
}

func unescape(s string, quote bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("trailing backslash")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case '"':
			if !quote {
				return "", errors.New(`\" in HELP`)
			}
			b.WriteByte('"')
		default:
			return "", errors.New("bad escape")
		}
	}
	return b.String(), nil
}

// splitLF splits at '\n', keeping any '\r' (bufio.ScanLines drops one).
func splitLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
