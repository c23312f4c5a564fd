package filter

import (
	"fmt"
	"strconv"
	"strings"
)

// maxDepth bounds the nesting of parentheses, function calls, IN lists, NOT and unary minus.
const maxDepth = 100

// ParseCESQL parses a CESQL expression (see the package documentation for the subset). The
// error is a *SyntaxError.
func ParseCESQL(src string) (*Expression, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := parser{toks: toks}
	if p.peek().k == tEOF {
		return nil, &SyntaxError{1, "empty expression"}
	}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.k != tEOF {
		return nil, p.errorf(t, "expected an operator or end of expression, found %s", t.describe())
	}
	if k := root.kind(); k != kBool {
		return nil, &SyntaxError{1, fmt.Sprintf("the expression yields %s %s; a filter needs a condition, such as type = 'com.example.created'", article(k), k)}
	}
	return &Expression{src: src, root: root}, nil
}

type parser struct {
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

// peek2 is the token after the next one.
func (p *parser) peek2() token {
	if p.i+1 < len(p.toks) {
		return p.toks[p.i+1]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.k != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return &SyntaxError{t.pos, fmt.Sprintf(format, args...)}
}

// enter counts one level of nesting; leave undoes it.
func (p *parser) enter(t token) error {
	if p.depth++; p.depth > maxDepth {
		return p.errorf(t, "expression nested more than %d deep", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// or, xor and and parse the logical operators, loosest first.
func (p *parser) or() (node, error)  { return p.logic("OR", p.xor) }
func (p *parser) xor() (node, error) { return p.logic("XOR", p.and) }
func (p *parser) and() (node, error) { return p.logic("AND", p.not) }

func (p *parser) logic(op string, operand func() (node, error)) (node, error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for p.peek().kw == op {
		p.next()
		r, err := operand()
		if err != nil {
			return nil, err
		}
		if err := checkCast(l, kBool, op); err != nil {
			return nil, err
		}
		if err := checkCast(r, kBool, op); err != nil {
			return nil, err
		}
		l = &logic{op: op, l: l, r: r}
	}
	return l, nil
}

func (p *parser) not() (node, error) {
	t := p.peek()
	if t.kw != "NOT" {
		return p.comparison()
	}
	p.next()
	if err := p.enter(t); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.not()
	if err != nil {
		return nil, err
	}
	if err := checkCast(x, kBool, "NOT"); err != nil {
		return nil, err
	}
	return &not{x: x, p: t.pos}, nil
}

// isComparison reports whether the next tokens start a comparison: an operator, LIKE, IN,
// NOT LIKE or NOT IN.
func (p *parser) isComparison() bool {
	switch t := p.peek(); {
	case t.k >= tEq && t.k <= tGe, t.kw == "LIKE", t.kw == "IN":
		return true
	case t.kw == "NOT":
		kw := p.peek2().kw
		return kw == "LIKE" || kw == "IN"
	}
	return false
}

func (p *parser) comparison() (node, error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	if !p.isComparison() {
		if t := p.peek(); t.kw == "NOT" {
			return nil, p.errorf(p.peek2(), "expected LIKE or IN after NOT, found %s", p.peek2().describe())
		}
		return l, nil
	}
	negate := false
	if p.peek().kw == "NOT" {
		p.next()
		negate = true
	}
	op := p.next()
	var n node
	switch {
	case op.kw == "LIKE":
		n, err = p.like(l, negate)
	case op.kw == "IN":
		n, err = p.in(op, l, negate)
	default:
		n, err = p.compare(op, l)
	}
	if err != nil {
		return nil, err
	}
	if p.isComparison() {
		return nil, p.errorf(p.peek(), "comparisons do not chain: add parentheses or AND before %s", p.peek().describe())
	}
	return n, nil
}

func (p *parser) compare(op token, l node) (node, error) {
	r, err := p.additive()
	if err != nil {
		return nil, err
	}
	if op.k == tEq || op.k == tNe {
		// The left operand is cast to the right's kind.
		if err := checkCast(l, r.kind(), op.text); err != nil {
			return nil, err
		}
	} else {
		if err := checkCast(l, kInt, op.text); err != nil {
			return nil, err
		}
		if err := checkCast(r, kInt, op.text); err != nil {
			return nil, err
		}
	}
	return &compare{op: op.k, l: l, r: r}, nil
}

func (p *parser) like(x node, negate bool) (node, error) {
	t := p.next()
	if t.k != tString {
		return nil, p.errorf(t, "expected a string pattern after LIKE, found %s", t.describe())
	}
	return &like{x: x, pat: compileLike(t.val), negate: negate}, nil
}

func (p *parser) in(op token, x node, negate bool) (node, error) {
	open := p.next()
	if open.k != tLParen {
		return nil, p.errorf(open, "expected '(' after IN, found %s", open.describe())
	}
	if err := p.enter(open); err != nil {
		return nil, err
	}
	defer p.leave()
	if t := p.peek(); t.k == tRParen {
		return nil, p.errorf(t, "expected a value in the IN list, found ')': the list cannot be empty")
	}
	var set []node
	for {
		m, err := p.or()
		if err != nil {
			return nil, err
		}
		if err := checkCast(m, x.kind(), "IN"); err != nil {
			return nil, err
		}
		set = append(set, m)
		switch t := p.next(); t.k {
		case tComma:
			continue
		case tRParen:
			return &in{x: x, set: set, negate: negate}, nil
		default:
			return nil, p.errorf(t, "expected ')' after IN list, found %s", t.describe())
		}
	}
}

func (p *parser) additive() (node, error) {
	return p.arith(p.multiplicative, tPlus, tMinus)
}

func (p *parser) multiplicative() (node, error) {
	return p.arith(p.unary, tStar, tSlash, tPercent)
}

func (p *parser) arith(operand func() (node, error), ops ...tokKind) (node, error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for {
		op := p.peek()
		if !containsKind(ops, op.k) {
			return l, nil
		}
		p.next()
		r, err := operand()
		if err != nil {
			return nil, err
		}
		if err := checkCast(l, kInt, op.text); err != nil {
			return nil, err
		}
		if err := checkCast(r, kInt, op.text); err != nil {
			return nil, err
		}
		l = &arith{op: op.k, p: op.pos, l: l, r: r}
	}
}

func containsKind(ks []tokKind, k tokKind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func (p *parser) unary() (node, error) {
	t := p.peek()
	if t.k != tMinus {
		return p.primary()
	}
	p.next()
	if n := p.peek(); n.k == tInt {
		// A negative literal, so that -2147483648 is in range.
		p.next()
		return p.integer(n, "-", t.pos)
	}
	if err := p.enter(t); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	if err := checkCast(x, kInt, "unary -"); err != nil {
		return nil, err
	}
	return &negate{x: x, p: t.pos}, nil
}

// integer is the literal t, negative when sign is "-"; pos is where it starts.
func (p *parser) integer(t token, sign string, pos int) (node, error) {
	n, err := strconv.ParseInt(sign+t.text, 10, 32)
	if err != nil {
		return nil, &SyntaxError{pos, fmt.Sprintf("integer %s%s is out of the 32-bit range", sign, clip(t.text))}
	}
	return &literal{v: intValue(int32(n)), p: pos}, nil
}

func (p *parser) primary() (node, error) {
	t := p.next()
	switch t.k {
	case tInt:
		return p.integer(t, "", t.pos)
	case tString:
		return &literal{v: stringValue(t.val), p: t.pos}, nil
	case tLParen:
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.k != tRParen {
			return nil, p.errorf(c, "expected ')' to close the '(' at %d, found %s", t.pos, c.describe())
		}
		return x, nil
	case tWord:
		switch t.kw {
		case "TRUE", "FALSE":
			return &literal{v: boolValue(t.kw == "TRUE"), p: t.pos}, nil
		case "EXISTS":
			a := p.next()
			if a.k != tWord || a.kw != "" {
				return nil, p.errorf(a, "expected an attribute name after EXISTS, found %s", a.describe())
			}
			if err := checkName(a); err != nil {
				return nil, err
			}
			return &exists{name: a.text, p: t.pos}, nil
		case "":
			if p.peek().k == tLParen {
				return p.call(t)
			}
			if err := checkName(t); err != nil {
				return nil, err
			}
			return &attribute{name: t.text, p: t.pos,
				missing: &evalError{t.pos, fmt.Sprintf("the event has no attribute %q", t.text)}}, nil
		}
	}
	return nil, p.errorf(t, "expected a value, found %s", t.describe())
}

// checkName checks an attribute name in an expression: lower-case letters and digits.
func checkName(t token) error {
	for _, r := range t.text {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return &SyntaxError{t.pos, fmt.Sprintf("invalid attribute name %q: attribute names are lower-case letters and digits", clip(t.text))}
		}
	}
	return nil
}

func (p *parser) call(name token) (node, error) {
	upper := strings.ToUpper(name.text)
	fn, ok := functions[upper]
	if !ok {
		return nil, p.errorf(name, "unknown function %s (supported: ABS, CONCAT, INT, LENGTH, LOWER, STRING, UPPER)", clip(name.text))
	}
	open := p.next()
	if err := p.enter(open); err != nil {
		return nil, err
	}
	defer p.leave()
	var args []node
	if p.peek().k == tRParen {
		p.next()
	} else {
		for {
			a, err := p.or()
			if err != nil {
				return nil, err
			}
			if err := checkCast(a, fn.param, upper); err != nil {
				return nil, err
			}
			args = append(args, a)
			t := p.next()
			if t.k == tRParen {
				break
			}
			if t.k != tComma {
				return nil, p.errorf(t, "expected ',' or ')' in the arguments of %s, found %s", upper, t.describe())
			}
		}
	}
	if upper != "CONCAT" && len(args) != 1 {
		return nil, p.errorf(name, "%s takes 1 argument, found %d", upper, len(args))
	}
	return &call{name: upper, fn: fn, args: args, p: name.pos}, nil
}

// checkCast rejects casts that can never succeed: an integer used as a boolean, or a literal
// that does not convert.
func checkCast(n node, k kind, op string) error {
	if n.kind() == k {
		return nil
	}
	if n.kind() == kInt && k == kBool {
		return &SyntaxError{n.pos(), fmt.Sprintf("%s needs a boolean, found an integer", op)}
	}
	if lit, ok := n.(*literal); ok {
		if _, err := cast(lit.v, k, lit.p); err != nil {
			return &SyntaxError{lit.p, fmt.Sprintf("%s needs %s %s, found %s %s", op, article(k), k, lit.v.k, quoteValue(lit.v))}
		}
	}
	return nil
}

func article(k kind) string {
	if k == kInt {
		return "an"
	}
	return "a"
}
