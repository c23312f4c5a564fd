package filter

import (
	"strings"
	"unicode/utf8"
)

// likePattern is a compiled LIKE pattern: runs of literal text, _ and %.
type likePattern []likeTok

type likeTok struct {
	k   byte   // 'l' literal, '_' one character, '%' any run
	lit string // for 'l'
}

// compileLike compiles a LIKE pattern. \% and \_ stand for a literal % and _; any other
// backslash is literal, as in the CloudEvents Go SDK.
func compileLike(pattern string) likePattern {
	var p likePattern
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p = append(p, likeTok{k: 'l', lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '\\' && i+1 < len(pattern) && (pattern[i+1] == '%' || pattern[i+1] == '_'):
			i++
			lit.WriteByte(pattern[i])
		case c == '%':
			flush()
			if len(p) == 0 || p[len(p)-1].k != '%' {
				p = append(p, likeTok{k: '%'})
			}
		case c == '_':
			flush()
			p = append(p, likeTok{k: '_'})
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return p
}

// match reports whether s matches the whole pattern. It backtracks only to the last %, so it
// takes at most about len(s) × len(p) steps.
func (p likePattern) match(s string) bool {
	pi, si := 0, 0
	star, starSi := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch t := p[pi]; t.k {
			case '%':
				star, starSi = pi, si
				pi++
				continue
			case '_':
				_, w := utf8.DecodeRuneInString(s[si:])
				si += w
				pi++
				continue
			default:
				if strings.HasPrefix(s[si:], t.lit) {
					si += len(t.lit)
					pi++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		// Let the last % take one more character and try again after it.
		_, w := utf8.DecodeRuneInString(s[starSi:])
		starSi += w
		pi, si = star+1, starSi
	}
	for pi < len(p) && p[pi].k == '%' {
		pi++
	}
	return pi == len(p)
}
