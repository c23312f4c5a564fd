package filter

import (
	"fmt"
	"strconv"
	"strings"
)

// SyntaxError is a CESQL expression that does not parse, or that could never evaluate (a cast
// that always fails, a result that is not a boolean).
type SyntaxError struct {
	Pos int    // 1-based, in characters; one past the end for "end of expression"
	Msg string // what was expected or what is wrong
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("cesql: at %d: %s", e.Pos, e.Msg) }

type tokKind uint8

const (
	tEOF    tokKind = iota
	tWord           // an attribute, function or keyword
	tInt            // digits
	tString         // a quoted string; val is its value
	tLParen
	tRParen
	tComma
	tEq // =
	tNe // != or <>
	tLt
	tLe
	tGt
	tGe
	tPlus
	tMinus
	tStar
	tSlash
	tPercent
)

type token struct {
	k    tokKind
	pos  int    // 1-based character position
	text string // as written
	val  string // a string's value
	kw   string // an upper-case keyword, or ""
}

var keywords = map[string]bool{
	"AND": true, "OR": true, "XOR": true, "NOT": true, "LIKE": true, "IN": true,
	"EXISTS": true, "TRUE": true, "FALSE": true,
}

// describe names a token in messages.
func (t token) describe() string {
	switch {
	case t.k == tEOF:
		return "end of expression"
	case t.kw != "":
		return t.kw
	case t.k == tString:
		return "string " + clip(t.text)
	case t.k == tWord || t.k == tInt:
		return strconv.Quote(clip(t.text))
	}
	return "'" + t.text + "'"
}

// clip shortens what a message quotes.
func clip(s string) string {
	const max = 40
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "..."
	}
	return s
}

// lex splits an expression into tokens, ending with tEOF.
func lex(src string) ([]token, error) {
	rs := []rune(src)
	var toks []token
	for i := 0; i < len(rs); {
		r := rs[i]
		start := i
		pos := i + 1
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			i++
			continue
		case isWordRune(r):
			for i < len(rs) && isWordRune(rs[i]) {
				i++
			}
			text := string(rs[start:i])
			k := tWord
			if isDigits(text) {
				k = tInt
			}
			t := token{k: k, pos: pos, text: text}
			if up := strings.ToUpper(text); k == tWord && keywords[up] {
				t.kw = up
			}
			toks = append(toks, t)
			continue
		case r == '\'' || r == '"':
			val, end, ok := lexString(rs, i)
			if !ok {
				return nil, &SyntaxError{pos, "unterminated string: no closing " + string(r)}
			}
			i = end
			toks = append(toks, token{k: tString, pos: pos, text: string(rs[start:i]), val: val})
			continue
		}
		k, n := lexSymbol(rs[i:])
		if n == 0 {
			if r == '!' {
				return nil, &SyntaxError{pos, "expected '=' after '!'"}
			}
			return nil, &SyntaxError{pos, fmt.Sprintf("unexpected character %q", r)}
		}
		i += n
		toks = append(toks, token{k: k, pos: pos, text: string(rs[start:i])})
	}
	return append(toks, token{k: tEOF, pos: len(rs) + 1}), nil
}

// lexString reads the string starting at rs[i], a quote, and returns its value and the index
// after its closing quote. A doubled quote or a backslash before the quote stands for the
// quote; any other backslash is kept with the character after it, so that a backslash never
// ends a string and LIKE patterns keep their escapes.
func lexString(rs []rune, i int) (string, int, bool) {
	q := rs[i]
	var b strings.Builder
	for i++; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '\\' && i+1 < len(rs):
			if rs[i+1] != q {
				b.WriteRune(r)
			}
			i++
			b.WriteRune(rs[i])
		case r == q && i+1 < len(rs) && rs[i+1] == q:
			b.WriteRune(q)
			i++
		case r == q:
			return b.String(), i + 1, true
		default:
			b.WriteRune(r)
		}
	}
	return "", 0, false
}

func lexSymbol(rs []rune) (tokKind, int) {
	two := ""
	if len(rs) > 1 {
		two = string(rs[:2])
	}
	switch two {
	case "!=", "<>":
		return tNe, 2
	case "<=":
		return tLe, 2
	case ">=":
		return tGe, 2
	}
	switch rs[0] {
	case '(':
		return tLParen, 1
	case ')':
		return tRParen, 1
	case ',':
		return tComma, 1
	case '=':
		return tEq, 1
	case '<':
		return tLt, 1
	case '>':
		return tGt, 1
	case '+':
		return tPlus, 1
	case '-':
		return tMinus, 1
	case '*':
		return tStar, 1
	case '/':
		return tSlash, 1
	case '%':
		return tPercent, 1
	}
	return 0, 0
}

// isWordRune reports whether r can be part of an attribute, function, keyword or integer.
// Upper-case letters and underscores are read so that the parser can say what is wrong with
// an attribute name.
func isWordRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_'
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
