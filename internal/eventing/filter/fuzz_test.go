package filter

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzParseCESQL checks that parsing and evaluating any input never panics, that errors are
// *SyntaxError with a position inside the input, and that Match agrees with Eval.
func FuzzParseCESQL(f *testing.F) {
	for _, seed := range []string{
		"type = 'com.example.created'",
		"NOT a = 'x' AND b = 'y' OR c XOR d",
		"source LIKE '%commerce%' AND type IN ('order.created', 'order.updated')",
		`myext NOT LIKE 'abc%123\%456\_d_f'`,
		"EXISTS subject AND LENGTH(subject) > 3",
		"CONCAT(UPPER(a), LOWER(b), 'x') = 'AYx' OR ABS(-5 % 3) = 2",
		"INT(hop) < INT(ttl) AND -hop * 2 / 0 >= -2147483648",
		`'it''s' = "say \"hi\"" <> TRUE`,
		"count IN (1, '2', TRUE) AND NOT count NOT IN (3)",
		"((((TRUE))))",
		"type IN ('a', 'b'",
		"2147483648 < x",
		"'unterminated",
		"a = b = c",
		"é€\x00\xff",
	} {
		f.Add(seed)
	}
	events := []Event{
		Attributes{},
		Attributes{"a": "x", "b": "y", "c": "true", "d": "FALSE", "type": "t", "count": "1", "hop": "5", "ttl": "-10", "subject": "héllo"},
		Attributes{"a": "-2147483648", "b": "2147483647", "count": "", "x": "%_\\", "myext": "abc123123%456_dzf"},
	}
	f.Fuzz(func(t *testing.T, src string) {
		x, err := ParseCESQL(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%q: error %T %v is not a *SyntaxError", src, err, err)
			}
			if n := utf8.RuneCountInString(src); se.Pos < 1 || se.Pos > n+1 {
				t.Fatalf("%q: error position %d outside 1..%d: %v", src, se.Pos, n+1, err)
			}
			if x != nil {
				t.Fatalf("%q: an expression with an error", src)
			}
			return
		}
		if x.String() != src {
			t.Fatalf("String() = %q, want %q", x.String(), src)
		}
		for _, e := range events {
			got, err := x.Eval(e)
			if err != nil && got {
				t.Fatalf("%q: Eval = true with error %v", src, err)
			}
			if x.Match(e) != (got && err == nil) {
				t.Fatalf("%q: Match disagrees with Eval", src)
			}
		}
	})
}
