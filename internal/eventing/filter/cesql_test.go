package filter

import (
	"errors"
	"strings"
	"testing"
)

// base is the event most cases evaluate against; a case's attributes are added to it.
func base(extra Attributes) Attributes {
	e := Attributes{"specversion": "1.0", "id": "1", "source": "/src", "type": "com.example.created"}
	for k, v := range extra {
		e[k] = v
	}
	return e
}

type evalCase struct {
	expr  string
	attrs Attributes // added to base
	want  bool
	err   string // part of Eval's error; "" for none
}

func runEval(t *testing.T, tests []evalCase) {
	t.Helper()
	for _, tt := range tests {
		x, err := ParseCESQL(tt.expr)
		if err != nil {
			t.Errorf("ParseCESQL(%q): %v", tt.expr, err)
			continue
		}
		e := base(tt.attrs)
		got, err := x.Eval(e)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q with %v: error %v", tt.expr, tt.attrs, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q with %v: error %v, want one containing %q", tt.expr, tt.attrs, err, tt.err)
		case got != tt.want:
			t.Errorf("%q with %v = %v, want %v", tt.expr, tt.attrs, got, tt.want)
		}
		if m := x.Match(e); m != (got && err == nil) {
			t.Errorf("%q: Match = %v, Eval = %v, %v", tt.expr, m, got, err)
		}
	}
}

func TestCESQLLiterals(t *testing.T) {
	runEval(t, []evalCase{
		{expr: "TRUE", want: true},
		{expr: "FALSE", want: false},
		{expr: "true", want: true},
		{expr: "fAlSe = FALSE", want: true},
		{expr: "'abc' = 'abc'", want: true},
		{expr: `"abc" = 'abc'`, want: true},
		{expr: "'aBc' = 'abc'", want: false},
		{expr: `'it\'s' = "it's"`, want: true},
		{expr: `'it''s' = "it's"`, want: true},
		{expr: `"say \"hi\"" = 'say "hi"'`, want: true},
		{expr: `"a""b" = 'a"b'`, want: true},
		{expr: `'' = ""`, want: true},
		{expr: `LENGTH('a\b') = 3`, want: true}, // other backslashes are kept
		{expr: `LENGTH('a\\') = 3`, want: true}, // and never end a string
		{expr: "0 = 0", want: true},
		{expr: "2147483647 > 0", want: true},
		{expr: "-2147483648 < 0", want: true},
		{expr: "007 = 7", want: true},
		{expr: "type\t=\n'com.example.created'\r", want: true},
	})
}

func TestCESQLComparisons(t *testing.T) {
	runEval(t, []evalCase{
		{expr: "type = 'com.example.created'", want: true},
		{expr: "type = 'com.example.deleted'", want: false},
		{expr: "type != 'com.example.deleted'", want: true},
		{expr: "type != 'com.example.created'", want: false},
		{expr: "type <> 'com.example.deleted'", want: true},
		{expr: "type <> 'com.example.created'", want: false},
		{expr: "1 < 2", want: true},
		{expr: "2 < 2", want: false},
		{expr: "2 <= 2", want: true},
		{expr: "3 <= 2", want: false},
		{expr: "3 > 2", want: true},
		{expr: "2 > 2", want: false},
		{expr: "2 >= 2", want: true},
		{expr: "2 >= 3", want: false},
		{expr: "TRUE = FALSE", want: false},
		{expr: "FALSE = FALSE", want: true},
		{expr: "TRUE != FALSE", want: true},
		{expr: "1 <> 2", want: true},
		// Ordering compares integers, not strings.
		{expr: "count > 9", attrs: Attributes{"count": "10"}, want: true},
		{expr: "count < '9'", attrs: Attributes{"count": "10"}, want: false},
		{expr: "hop < ttl", attrs: Attributes{"hop": "5", "ttl": "10"}, want: true},
		{expr: "a < b", attrs: Attributes{"a": "abc", "b": "abd"}, want: false, err: `cannot cast string "abc" to integer`},
	})
}

func TestCESQLCasts(t *testing.T) {
	runEval(t, []evalCase{
		// = casts the left operand to the right's type.
		{expr: "count = 5", attrs: Attributes{"count": "5"}, want: true},
		{expr: "count = 5", attrs: Attributes{"count": "05"}, want: true},
		{expr: "count = 5", attrs: Attributes{"count": "+5"}, want: true},
		{expr: "count = 5", attrs: Attributes{"count": "6"}, want: false},
		{expr: "count = -5", attrs: Attributes{"count": "-5"}, want: true},
		{expr: "count = 5", attrs: Attributes{"count": "five"}, want: false, err: `at 1: cannot cast string "five" to integer`},
		{expr: "count = 5", attrs: Attributes{"count": "5.0"}, want: false, err: "cannot cast"},
		{expr: "count = 5", attrs: Attributes{"count": " 5"}, want: false, err: "cannot cast"},
		{expr: "count = 5", attrs: Attributes{"count": "2147483648"}, want: false, err: "cannot cast"},
		{expr: "count != 5", attrs: Attributes{"count": "five"}, want: false, err: "cannot cast"},
		{expr: "5 = count", attrs: Attributes{"count": "5"}, want: true},
		{expr: "5 = count", attrs: Attributes{"count": "05"}, want: false}, // compared as strings
		{expr: "5 = count", attrs: Attributes{"count": "five"}, want: false},
		{expr: "'5' = 5", want: true},
		{expr: "5 = '5'", want: true},
		{expr: "5 = '05'", want: false},
		{expr: "flag = TRUE", attrs: Attributes{"flag": "true"}, want: true},
		{expr: "flag = TRUE", attrs: Attributes{"flag": "TRUE"}, want: true},
		{expr: "flag = FALSE", attrs: Attributes{"flag": "False"}, want: true},
		{expr: "flag = TRUE", attrs: Attributes{"flag": "yes"}, want: false, err: `cannot cast string "yes" to boolean`},
		{expr: "flag AND TRUE", attrs: Attributes{"flag": "true"}, want: true},
		{expr: "TRUE = 'TRUE'", want: false}, // TRUE becomes 'true'
		{expr: "'TRUE' = TRUE", want: true},
		{expr: "TRUE = 'true'", want: true},
		{expr: "1 = TRUE + 0", want: true},
		{expr: "STRING(TRUE) = 'true'", want: true},
		{expr: "count + 1 = 6", attrs: Attributes{"count": "5"}, want: true},
		{expr: "'5' + 3 = 8", want: true},
		{expr: "5 + '3' = 8", want: true},
		{expr: "5 + TRUE = 6", want: true},
		{expr: "-TRUE = -1", want: true},
		{expr: "NOT 'true'", want: false},
		{expr: "NOT flag", attrs: Attributes{"flag": "FALSE"}, want: true},
		{expr: "NOT flag", attrs: Attributes{"flag": "1"}, want: false, err: `cannot cast string "1" to boolean`},
	})
}

func TestCESQLArithmetic(t *testing.T) {
	runEval(t, []evalCase{
		{expr: "4 * 2 + 4 / 2 = 10", want: true},
		{expr: "4 * (2 + 4) / 2 = 12", want: true},
		{expr: "1 + 2 * 3 = 7", want: true},
		{expr: "(1 + 2) * 3 = 9", want: true},
		{expr: "10 - 4 - 3 = 3", want: true},
		{expr: "100 / 10 / 5 = 2", want: true},
		{expr: "4 + 1 = 5", want: true},
		{expr: "4 - 1 = 3", want: true},
		{expr: "-4 - 1 = -5", want: true},
		{expr: "4 + -1 = 3", want: true},
		{expr: "5 / 3 = 1", want: true},
		{expr: "-5 / 3 = -1", want: true}, // truncated
		{expr: "5 % 3 = 2", want: true},
		{expr: "-5 % 3 = -2", want: true}, // the dividend's sign
		{expr: "5 % -3 = 2", want: true},
		{expr: "-2 * 3 = -6", want: true},
		{expr: "- 5 = -5", want: true},
		{expr: "--5 = 5", want: true},
		{expr: "-(2 + 3) = -5", want: true},
		{expr: "-count = -5", attrs: Attributes{"count": "5"}, want: true},
		{expr: "-'10' = -10", want: true},
		{expr: "-2147483648 = -2147483647 - 1", want: true},
		{expr: "2147483647 + 1 > 0", want: false, err: "at 12: integer overflow"},
		{expr: "-2147483648 - 1 < 0", want: false, err: "integer overflow"},
		{expr: "65536 * 65536 > 0", want: false, err: "integer overflow"},
		{expr: "-2147483648 / -1 > 0", want: false, err: "integer overflow"},
		{expr: "-(-2147483648) > 0", want: false, err: "at 1: integer overflow"},
		{expr: "5 / 0 = 0", want: false, err: "at 3: division by zero"},
		{expr: "5 % 0 = 0", want: false, err: "division by zero"},
		{expr: "count / 0 = 0", want: false, err: `no attribute "count"`}, // the missing attribute first
	})
}

func TestCESQLLogic(t *testing.T) {
	runEval(t, []evalCase{
		{expr: "FALSE AND FALSE", want: false},
		{expr: "FALSE AND TRUE", want: false},
		{expr: "TRUE AND FALSE", want: false},
		{expr: "TRUE AND TRUE", want: true},
		{expr: "FALSE OR FALSE", want: false},
		{expr: "FALSE OR TRUE", want: true},
		{expr: "TRUE OR FALSE", want: true},
		{expr: "TRUE OR TRUE", want: true},
		{expr: "FALSE XOR FALSE", want: false},
		{expr: "FALSE XOR TRUE", want: true},
		{expr: "TRUE XOR FALSE", want: true},
		{expr: "TRUE XOR TRUE", want: false},
		{expr: "NOT TRUE", want: false},
		{expr: "NOT FALSE", want: true},
		{expr: "NOT NOT TRUE", want: true},
		{expr: "NOT (type = 'x')", want: true},
		// AND and OR skip the right operand when the left decides; XOR never does.
		{expr: "FALSE AND missing = 'x'", want: false},
		{expr: "TRUE OR missing = 'x'", want: true},
		{expr: "FALSE AND 1 / 0 = 1", want: false},
		{expr: "TRUE AND missing = 'x'", want: false, err: `the event has no attribute "missing"`},
		{expr: "FALSE OR missing = 'x'", want: false, err: "missing"},
		{expr: "TRUE XOR missing = 'x'", want: false, err: "missing"},
		{expr: "EXISTS count AND count > 5", want: false},
		{expr: "EXISTS count AND count > 5", attrs: Attributes{"count": "6"}, want: true},
		{expr: "NOT EXISTS count OR count > 5", want: true},
	})
}

func TestCESQLPrecedence(t *testing.T) {
	ab := func(a, b string) Attributes { return Attributes{"a": a, "b": b} }
	abc := func(a, b, c string) Attributes { return Attributes{"a": a, "b": b, "c": c} }
	runEval(t, []evalCase{
		// NOT binds looser than =: (NOT (a = 'x')) AND (b = 'y').
		{expr: "NOT a = 'x' AND b = 'y'", attrs: ab("z", "y"), want: true},
		{expr: "NOT a = 'x' AND b = 'y'", attrs: ab("x", "y"), want: false},
		{expr: "NOT a = 'x' AND b = 'y'", attrs: ab("z", "z"), want: false},
		// AND binds tighter than OR, on either side.
		{expr: "a = 'x' OR b = 'y' AND c = 'z'", attrs: abc("x", "n", "n"), want: true},
		{expr: "a = 'x' OR b = 'y' AND c = 'z'", attrs: abc("n", "y", "n"), want: false},
		{expr: "a = 'x' AND b = 'y' OR c = 'z'", attrs: abc("n", "n", "z"), want: true},
		{expr: "a = 'x' AND (b = 'y' OR c = 'z')", attrs: abc("n", "n", "z"), want: false},
		{expr: "(a = 'x' OR b = 'y') AND c = 'z'", attrs: abc("x", "n", "n"), want: false},
		// XOR sits between AND and OR.
		{expr: "TRUE OR TRUE XOR TRUE", want: true},
		{expr: "TRUE XOR TRUE AND FALSE", want: true},
		{expr: "FALSE AND TRUE XOR TRUE", want: true},
		// NOT applies to the whole comparison, LIKE and IN included.
		{expr: "NOT type LIKE 'com.%'", want: false},
		{expr: "NOT type IN ('a', 'b')", want: true},
		{expr: "NOT NOT type = 'com.example.created'", want: true},
		// Arithmetic binds tighter than comparison.
		{expr: "LENGTH(type) + 1 > 19", want: true},
		{expr: "1 + 1 = 2 AND 2 * 2 = 4", want: true},
		{expr: "-1 + 2 = 1", want: true},
	})
}

func TestCESQLLike(t *testing.T) {
	runEval(t, []evalCase{
		{expr: "'abc' LIKE 'abc'", want: true},
		{expr: "'abc' NOT LIKE 'abc'", want: false},
		{expr: "'ABC' LIKE 'abc'", want: false}, // case-sensitive
		{expr: "'abc' LIKE 'a%b%c'", want: true},
		{expr: "'azzzbzzzc' LIKE 'a%b%c'", want: true},
		{expr: "'a%b%c' LIKE 'a%b%c'", want: true},
		{expr: "'ac' LIKE 'abc'", want: false},
		{expr: "'' LIKE 'abc'", want: false},
		{expr: "'' LIKE '%'", want: true},
		{expr: "'' LIKE '_'", want: false},
		{expr: "'abc' LIKE '%'", want: true},
		{expr: "'abc' LIKE '%%%'", want: true},
		{expr: "'.ab.cde.' LIKE '.%.%.'", want: true},
		{expr: "'ab.cde' LIKE '.%.%.'", want: false},
		{expr: "'abc' LIKE 'a_b_c'", want: false},
		{expr: "'azbzc' LIKE 'a_b_c'", want: true},
		{expr: "'abzc' LIKE 'a_b_c'", want: false},
		{expr: "'héllo' LIKE 'h_llo'", want: true}, // _ is one character, not one byte
		{expr: "'日本' LIKE '__'", want: true},
		{expr: "'mississippi' LIKE '%iss%ppi'", want: true},
		{expr: "'abcabd' LIKE '%abd'", want: true},
		{expr: "'aaa' LIKE '%a%a%a%a'", want: false},
		{expr: "'ab' LIKE 'a%b%'", want: true},
		// Escapes.
		{expr: `'a_b_c' LIKE 'a\_b\_c'`, want: true},
		{expr: `'azbzc' LIKE 'a\_b\_c'`, want: false},
		{expr: `'a_b_c' NOT LIKE 'a\_b\_c'`, want: false},
		{expr: `'a%b%c' LIKE 'a\%b\%c'`, want: true},
		{expr: `'abc' LIKE 'a\%b\%c'`, want: false},
		{expr: `'azbzc' LIKE 'a\%b\%c'`, want: false},
		{expr: `'ab\c' LIKE 'ab\c'`, want: true}, // a backslash before anything else is literal
		{expr: `'100%' LIKE '%\%'`, want: true},
		{expr: `'100' LIKE '%\%'`, want: false},
		{expr: `"it's" LIKE 'it\'%'`, want: true},
		// Attributes and casts.
		{expr: `myext LIKE 'abc%123\%456\_d_f'`, attrs: Attributes{"myext": "abc123123%456_dzf"}, want: true},
		{expr: "type LIKE 'com.example.%'", want: true},
		{expr: "type LIKE '%.deleted'", want: false},
		{expr: "type NOT LIKE '%.deleted'", want: true},
		{expr: "234 LIKE '23_'", want: true},
		{expr: "2344 LIKE '23_'", want: false},
		{expr: "TRUE LIKE 'tr%'", want: true},
		{expr: "missing LIKE '%'", want: false, err: "missing"},
	})
}

func TestCESQLIn(t *testing.T) {
	runEval(t, []evalCase{
		{expr: "type IN ('com.example.created')", want: true},
		{expr: "type IN ('a', 'com.example.created', 'b')", want: true},
		{expr: "type IN ('a', 'b')", want: false},
		{expr: "type NOT IN ('a', 'b')", want: true},
		{expr: "type NOT IN ('a', 'com.example.created')", want: false},
		{expr: "type iN (LOWER('COM.EXAMPLE.CREATED'))", want: true},
		{expr: "type IN (CONCAT('com.', 'example.', 'created'))", want: true},
		// The list is cast to the left operand's type.
		{expr: "count IN (1, 5)", attrs: Attributes{"count": "5"}, want: true},
		{expr: "count IN (5)", attrs: Attributes{"count": "05"}, want: false},
		{expr: "5 IN (count)", attrs: Attributes{"count": "05"}, want: true},
		{expr: "count + 0 IN (5)", attrs: Attributes{"count": "05"}, want: true},
		{expr: "TRUE IN (FALSE, 'true')", want: true},
		{expr: "1 IN (x)", attrs: Attributes{"x": "y"}, want: false, err: `cannot cast string "y" to integer`},
		// Evaluated in order, stopping at the first equal element.
		{expr: "'a' IN ('a', missing)", want: true},
		{expr: "'a' IN ('b', missing)", want: false, err: "missing"},
		{expr: "missing IN ('a')", want: false, err: "missing"},
	})
}

func TestCESQLExistsAndMissing(t *testing.T) {
	runEval(t, []evalCase{
		{expr: "EXISTS type", want: true},
		{expr: "EXISTS id", want: true},
		{expr: "EXISTS subject", want: false},
		{expr: "EXISTS subject", attrs: Attributes{"subject": "s"}, want: true},
		{expr: "EXISTS subject", attrs: Attributes{"subject": ""}, want: true}, // present, empty
		{expr: "exists myext", attrs: Attributes{"myext": "v"}, want: true},
		{expr: "NOT EXISTS myext", want: true},
		{expr: "ext1 = 'v' AND 1ext = 'w'", attrs: Attributes{"ext1": "v", "1ext": "w"}, want: true},
		// A missing attribute makes the whole expression fail, whatever surrounds it.
		{expr: "missing = 'x'", want: false, err: `at 1: the event has no attribute "missing"`},
		{expr: "missing != 'x'", want: false, err: "missing"},
		{expr: "NOT (missing = 'x')", want: false, err: "missing"},
		{expr: "NOT missing", want: false, err: "missing"},
		{expr: "missing = 'x' OR type = 'com.example.created'", want: false, err: "missing"},
		{expr: "type = 'com.example.created' OR missing = 'x'", want: true},
		{expr: "LENGTH(missing) = 0", want: false, err: "missing"},
		{expr: "-missing = 0", want: false, err: "missing"},
		{expr: "subject = ''", want: false, err: "subject"},
	})
}

func TestCESQLFunctions(t *testing.T) {
	runEval(t, []evalCase{
		{expr: "LENGTH('abc') = 3", want: true},
		{expr: "LENGTH('') = 0", want: true},
		{expr: "LENGTH('héllo') = 5", want: true},
		{expr: "LENGTH(123) = 3", want: true},
		{expr: "LENGTH(TRUE) = 4", want: true},
		{expr: "length(type) = 19", want: true},
		{expr: "UPPER(type) = 'COM.EXAMPLE.CREATED'", want: true},
		{expr: "UPPER('aBc') = 'ABC'", want: true},
		{expr: "LOWER('AbC') = 'abc'", want: true},
		{expr: "Lower(myext) = 'mixed'", attrs: Attributes{"myext": "MiXeD"}, want: true},
		{expr: "CONCAT(source, '/', id) = '/src/1'", want: true},
		{expr: "CONCAT('a', 'b', 'c') = 'abc'", want: true},
		{expr: "CONCAT('a') = 'a'", want: true},
		{expr: "CONCAT() = ''", want: true},
		{expr: "CONCAT(1, TRUE) = '1true'", want: true},
		{expr: "ABS(10) = 10", want: true},
		{expr: "ABS(-10) = 10", want: true},
		{expr: "ABS(0) = 0", want: true},
		{expr: "abs(count) = 5", attrs: Attributes{"count": "-5"}, want: true},
		{expr: "ABS(-2147483648) > 0", want: false, err: "integer overflow"},
		{expr: "ABS(count) = 5", attrs: Attributes{"count": "x"}, want: false, err: "cannot cast"},
		{expr: "INT('12') = 12", want: true},
		{expr: "INT(TRUE) = 1", want: true},
		{expr: "INT(hop) < INT(ttl) AND INT(hop) < 1000", attrs: Attributes{"hop": "5", "ttl": "10"}, want: true},
		{expr: "int(hop) < int(ttl) and int(hop) < 1000", attrs: Attributes{"hop": "5", "ttl": "10"}, want: true},
		{expr: "STRING(12) = '12'", want: true},
		{expr: "STRING(FALSE) = 'false'", want: true},
		{expr: "LENGTH(UPPER(CONCAT(type, 'x'))) = 20", want: true},
	})
}

func TestCESQLCaseInsensitiveKeywords(t *testing.T) {
	runEval(t, []evalCase{
		{expr: "type like 'com%' and not exists missing or false", want: true},
		{expr: "type Not In ('a') xOr False", want: true},
		{expr: "Exists type AnD tRUE", want: true},
	})
}

func TestCESQLSyntaxErrors(t *testing.T) {
	deep := strings.Repeat("(", maxDepth+1) + "TRUE" + strings.Repeat(")", maxDepth+1)
	tests := []struct{ expr, err string }{
		{"", "cesql: at 1: empty expression"},
		{"  \t", "cesql: at 1: empty expression"},
		{"type =", "cesql: at 7: expected a value, found end of expression"},
		{"type = 'a' AND", "cesql: at 15: expected a value, found end of expression"},
		{"AND type = 'a'", "cesql: at 1: expected a value, found AND"},
		{"type = )", "cesql: at 8: expected a value, found ')'"},
		{"type IN ('a', 'b'", "cesql: at 18: expected ')' after IN list, found end of expression"},
		{"type IN ('a' 'b')", "cesql: at 14: expected ')' after IN list, found string 'b'"},
		{"type IN 'a'", "cesql: at 9: expected '(' after IN, found string 'a'"},
		{"type IN ()", "cesql: at 10: expected a value in the IN list, found ')': the list cannot be empty"},
		{"type LIKE type", "cesql: at 11: expected a string pattern after LIKE, found \"type\""},
		{"type LIKE", "cesql: at 10: expected a string pattern after LIKE, found end of expression"},
		{"type NOT 'x'", "cesql: at 10: expected LIKE or IN after NOT, found string 'x'"},
		{"EXISTS 'type'", "cesql: at 8: expected an attribute name after EXISTS, found string 'type'"},
		{"EXISTS AND", "cesql: at 8: expected an attribute name after EXISTS, found AND"},
		{"EXISTS Type", `cesql: at 8: invalid attribute name "Type": attribute names are lower-case letters and digits`},
		{"Type = 'x'", `cesql: at 1: invalid attribute name "Type": attribute names are lower-case letters and digits`},
		{"my_ext = 'x'", `cesql: at 1: invalid attribute name "my_ext": attribute names are lower-case letters and digits`},
		{"in = 'x'", "cesql: at 1: expected a value, found IN"},
		{"FOO(type) = 'x'", "cesql: at 1: unknown function FOO (supported: ABS, CONCAT, INT, LENGTH, LOWER, STRING, UPPER)"},
		{"CONCAT_WS(',', 'a') = 'a'", "cesql: at 1: unknown function CONCAT_WS (supported: ABS, CONCAT, INT, LENGTH, LOWER, STRING, UPPER)"},
		{"LENGTH(type, source) = 1", "cesql: at 1: LENGTH takes 1 argument, found 2"},
		{"length() = 0", "cesql: at 1: LENGTH takes 1 argument, found 0"},
		{"UPPER(type = 'x'", "cesql: at 17: expected ',' or ')' in the arguments of UPPER, found end of expression"},
		{"(type = 'x'", "cesql: at 12: expected ')' to close the '(' at 1, found end of expression"},
		{"type = 'x')", "cesql: at 11: expected an operator or end of expression, found ')'"},
		{"type = 'x' type = 'y'", "cesql: at 12: expected an operator or end of expression, found \"type\""},
		{"type = 'abc", "cesql: at 8: unterminated string: no closing '"},
		{`type = "abc\"`, `cesql: at 8: unterminated string: no closing "`},
		{"type # 'a'", "cesql: at 6: unexpected character '#'"},
		{"type ! 'a'", "cesql: at 6: expected '=' after '!'"},
		{"type = 'é' €", "cesql: at 12: unexpected character '€'"},
		{"a = b = c", "cesql: at 7: comparisons do not chain: add parentheses or AND before '='"},
		{"a < b LIKE 'x'", "cesql: at 7: comparisons do not chain: add parentheses or AND before LIKE"},
		{"a LIKE 'x' NOT IN ('y')", "cesql: at 12: comparisons do not chain: add parentheses or AND before NOT"},
		{"2147483648 > 0", "cesql: at 1: integer 2147483648 is out of the 32-bit range"},
		{"x > -2147483649", "cesql: at 5: integer -2147483649 is out of the 32-bit range"},
		{"type", "cesql: at 1: the expression yields a string; a filter needs a condition, such as type = 'com.example.created'"},
		{"1 + 1", "cesql: at 1: the expression yields an integer; a filter needs a condition, such as type = 'com.example.created'"},
		{"NOT 5", "cesql: at 5: NOT needs a boolean, found an integer"},
		{"5 AND TRUE", "cesql: at 1: AND needs a boolean, found an integer"},
		{"TRUE OR LENGTH(type)", "cesql: at 9: OR needs a boolean, found an integer"},
		{"5 = TRUE", "cesql: at 1: = needs a boolean, found an integer"},
		{"'x' = 5", `cesql: at 1: = needs an integer, found string "x"`},
		{"'abc' + 1 = 2", `cesql: at 1: + needs an integer, found string "abc"`},
		{"-'abc' = 2", `cesql: at 2: unary - needs an integer, found string "abc"`},
		{"1 IN ('a')", `cesql: at 7: IN needs an integer, found string "a"`},
		{"ABS('x') = 1", `cesql: at 5: ABS needs an integer, found string "x"`},
		{deep, "cesql: at 101: expression nested more than 100 deep"},
	}
	for _, tt := range tests {
		x, err := ParseCESQL(tt.expr)
		if err == nil {
			t.Errorf("ParseCESQL(%q) = %v, want error %q", tt.expr, x, tt.err)
			continue
		}
		if err.Error() != tt.err {
			t.Errorf("ParseCESQL(%q):\n got %s\nwant %s", tt.expr, err, tt.err)
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseCESQL(%q): %T is not a *SyntaxError", tt.expr, err)
		}
	}
}

func TestExpressionString(t *testing.T) {
	const src = "type LIKE 'com.%'"
	x, err := ParseCESQL(src)
	if err != nil {
		t.Fatal(err)
	}
	if x.String() != src {
		t.Errorf("String() = %q, want %q", x.String(), src)
	}
}

func TestLikePattern(t *testing.T) {
	// The matcher against a naive recursive one, on every short string over a small alphabet.
	patterns := []string{"", "%", "_", "a", "a%", "%a", "%a%", "a_b", "%a_%b", "__%", `\%`, `a\_%`, "%%a%%b%%", "ab%ba"}
	alphabet := []string{"a", "b", "_", "%"}
	var strs []string
	var gen func(s string, n int)
	gen = func(s string, n int) {
		strs = append(strs, s)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(s+c, n-1)
		}
	}
	gen("", 4)
	for _, pat := range patterns {
		p := compileLike(pat)
		for _, s := range strs {
			if got, want := p.match(s), naiveLike([]rune(s), p); got != want {
				t.Errorf("%q LIKE %q = %v, want %v", s, pat, got, want)
			}
		}
	}
}

func naiveLike(s []rune, p likePattern) bool {
	if len(p) == 0 {
		return len(s) == 0
	}
	switch t := p[0]; t.k {
	case '%':
		for i := 0; i <= len(s); i++ {
			if naiveLike(s[i:], p[1:]) {
				return true
			}
		}
		return false
	case '_':
		return len(s) > 0 && naiveLike(s[1:], p[1:])
	default:
		lit := []rune(t.lit)
		return len(s) >= len(lit) && string(s[:len(lit)]) == t.lit && naiveLike(s[len(lit):], p[1:])
	}
}
