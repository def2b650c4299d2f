package discovery

import (
	"bytes"
	"encoding/json"
)

// checkList is the cluster's check list (/v1/health/state/any) as the
// detector reads it: only the five fields of CheckState. The answer is
// large — about 450 bytes per check, twice that from a dev agent, which
// indents its JSON — and the catalog loop reads it whenever a registration
// changes, so its decoding is on the path of every deploy: encoding/json
// spends most of its time on the fields thrown away (Output, Definition,
// ServiceTags…), and this scanner only steps over them. Anything it does
// not expect falls back to encoding/json, so a new Consul format costs
// speed, never correctness.
type checkList []CheckState

// UnmarshalJSON decodes a JSON array of checks.
func (l *checkList) UnmarshalJSON(b []byte) error {
	if out, ok := scanChecks(b); ok {
		*l = out
		return nil
	}
	var std []CheckState
	if err := json.Unmarshal(b, &std); err != nil {
		return err
	}
	*l = std
	return nil
}

// scanChecks decodes a JSON array of check objects, keeping the CheckState
// fields (string values, or null) and skipping every other value. ok is
// false on anything unexpected: malformed JSON, a kept field that is not a
// string, an escape sequence in a kept string.
func scanChecks(b []byte) (out []CheckState, ok bool) {
	s := scanner{b: b}
	if !s.expect('[') {
		return nil, false
	}
	out = make([]CheckState, 0, bytes.Count(b, []byte(`"CheckID"`)))
	if s.peek() == ']' {
		s.i++
		return out, s.end()
	}
	intern := make(map[string]string)
	for {
		var c CheckState
		if !s.object(&c, intern) {
			return nil, false
		}
		out = append(out, c)
		switch s.next() {
		case ',':
		case ']':
			return out, s.end()
		default:
			return nil, false
		}
	}
}

type scanner struct {
	b []byte
	i int
}

// peek returns the next non-space byte without taking it (0 at the end).
func (s *scanner) peek() byte {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

// next takes the next non-space byte (0 at the end).
func (s *scanner) next() byte {
	c := s.peek()
	if c != 0 {
		s.i++
	}
	return c
}

func (s *scanner) expect(c byte) bool { return s.next() == c }

// end reports whether only spaces are left.
func (s *scanner) end() bool { return s.peek() == 0 && s.i == len(s.b) }

// object decodes one check object into c.
func (s *scanner) object(c *CheckState, intern map[string]string) bool {
	if !s.expect('{') {
		return false
	}
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		key, ok := s.rawString()
		if !ok || !s.expect(':') {
			return false
		}
		var dst *string
		switch string(key) { // no allocation: the compiler compares in place
		case "Node":
			dst = &c.Node
		case "CheckID":
			dst = &c.CheckID
		case "ServiceID":
			dst = &c.ServiceID
		case "ServiceName":
			dst = &c.ServiceName
		case "Status":
			dst = &c.Status
		}
		if dst == nil {
			if foldsToKept(key) {
				return false // encoding/json matches names case-insensitively, and unescaped
			}
			if !s.skipValue() {
				return false
			}
		} else if !s.stringValue(dst, intern) {
			return false
		}
		switch s.next() {
		case ',':
		case '}':
			return true
		default:
			return false
		}
	}
}

// foldsToKept reports whether a key that is not one of CheckState's field
// names could still be one to encoding/json: in another case, or escaped.
func foldsToKept(key []byte) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		return true
	}
	for _, k := range [...]string{"Node", "CheckID", "ServiceID", "ServiceName", "Status"} {
		if len(key) == len(k) && bytes.EqualFold(key, []byte(k)) {
			return true
		}
	}
	return false
}

// stringValue decodes a kept field: a string without escapes, or null.
// Node names, statuses and service names repeat across thousands of checks,
// so each distinct value is allocated once.
func (s *scanner) stringValue(dst *string, intern map[string]string) bool {
	if s.peek() == 'n' {
		if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
			s.i += 4
			return true
		}
		return false
	}
	raw, ok := s.rawString()
	if !ok || bytes.IndexByte(raw, '\\') >= 0 {
		return false
	}
	v, found := intern[string(raw)]
	if !found {
		v = string(raw)
		intern[v] = v
	}
	*dst = v
	return true
}

// rawString takes a string and returns its bytes between the quotes,
// escapes left as they are.
func (s *scanner) rawString() ([]byte, bool) {
	if !s.expect('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		j := bytes.IndexAny(s.b[s.i:], "\"\\")
		if j < 0 {
			return nil, false
		}
		s.i += j
		if s.b[s.i] == '\\' {
			s.i += 2 // the escaped byte (\" included); \uXXXX's digits are plain bytes
			continue
		}
		s.i++
		return s.b[start : s.i-1], true
	}
	return nil, false
}

// skipValue steps over one value of any type. Nested objects and arrays are
// matched bracket by bracket, strings skipped whole; literals and numbers run
// to the next delimiter (their syntax is not checked: no kept field depends
// on them).
func (s *scanner) skipValue() bool {
	switch s.peek() {
	case '"':
		_, ok := s.rawString()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, ok := s.rawString(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	case 0, ',', '}', ']', ':':
		return false
	default:
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return true
			}
			s.i++
		}
		return false
	}
}
