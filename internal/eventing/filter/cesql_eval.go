package filter

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Expression is a parsed CESQL expression. It is immutable and safe for concurrent use.
type Expression struct {
	src  string
	root node
}

// Match reports whether the expression is true for the event; it is false when the
// expression cannot be evaluated for it.
func (x *Expression) Match(e Event) bool {
	v, err := x.root.eval(e)
	return err == nil && v.n != 0
}

// Eval evaluates the expression for the event, with the reason when it cannot be evaluated
// (the event then does not match).
func (x *Expression) Eval(e Event) (bool, error) {
	v, err := x.root.eval(e)
	if err != nil {
		return false, err
	}
	return v.n != 0, nil
}

// String returns the expression as written.
func (x *Expression) String() string { return x.src }

// kind is a CESQL type.
type kind uint8

const (
	kString kind = iota
	kInt
	kBool
)

func (k kind) String() string {
	switch k {
	case kInt:
		return "integer"
	case kBool:
		return "boolean"
	}
	return "string"
}

// value is a CESQL value: s for a string; n for an integer, or 1 and 0 for true and false.
// The field a kind does not use is zero, so values of one kind compare with ==.
type value struct {
	k kind
	s string
	n int32
}

func stringValue(s string) value { return value{k: kString, s: s} }
func intValue(n int32) value     { return value{k: kInt, n: n} }

func boolValue(b bool) value {
	if b {
		return value{k: kBool, n: 1}
	}
	return value{k: kBool}
}

func (v value) String() string {
	switch v.k {
	case kInt:
		return strconv.FormatInt(int64(v.n), 10)
	case kBool:
		return strconv.FormatBool(v.n != 0)
	}
	return v.s
}

// evalError says why an expression could not be evaluated for an event.
type evalError struct {
	pos int
	msg string
}

func (e *evalError) Error() string { return fmt.Sprintf("cesql: at %d: %s", e.pos, e.msg) }

// cast converts v to kind k as the specification's implicit casts do; pos is where v comes
// from, for the error.
func cast(v value, k kind, pos int) (value, error) {
	if v.k == k {
		return v, nil
	}
	switch k {
	case kString:
		return stringValue(v.String()), nil
	case kInt:
		if v.k == kBool {
			return intValue(v.n), nil
		}
		n, err := strconv.ParseInt(v.s, 10, 32)
		if err == nil {
			return intValue(int32(n)), nil
		}
	case kBool:
		if v.k == kString {
			switch {
			case strings.EqualFold(v.s, "true"):
				return boolValue(true), nil
			case strings.EqualFold(v.s, "false"):
				return boolValue(false), nil
			}
		}
	}
	return value{}, &evalError{pos, fmt.Sprintf("cannot cast %s %s to %s", v.k, quoteValue(v), k)}
}

func quoteValue(v value) string {
	if v.k == kString {
		return strconv.Quote(clip(v.s))
	}
	return v.String()
}

// node is an expression in the tree. Its kind is known when it is parsed.
type node interface {
	eval(Event) (value, error)
	kind() kind
	pos() int
}

// evalAs evaluates n and casts the result to k.
func evalAs(n node, e Event, k kind) (value, error) {
	v, err := n.eval(e)
	if err != nil {
		return value{}, err
	}
	return cast(v, k, n.pos())
}

type literal struct {
	v value
	p int
}

func (n *literal) eval(Event) (value, error) { return n.v, nil }
func (n *literal) kind() kind                { return n.v.k }
func (n *literal) pos() int                  { return n.p }

type attribute struct {
	name    string
	p       int
	missing error // made once, so that a missing attribute costs no allocation
}

func (n *attribute) eval(e Event) (value, error) {
	s, ok := e.Attribute(n.name)
	if !ok {
		return value{}, n.missing
	}
	return stringValue(s), nil
}
func (n *attribute) kind() kind { return kString }
func (n *attribute) pos() int   { return n.p }

type exists struct {
	name string
	p    int
}

func (n *exists) eval(e Event) (value, error) {
	_, ok := e.Attribute(n.name)
	return boolValue(ok), nil
}
func (n *exists) kind() kind { return kBool }
func (n *exists) pos() int   { return n.p }

type not struct {
	x node
	p int
}

func (n *not) eval(e Event) (value, error) {
	v, err := evalAs(n.x, e, kBool)
	if err != nil {
		return value{}, err
	}
	return boolValue(v.n == 0), nil
}
func (n *not) kind() kind { return kBool }
func (n *not) pos() int   { return n.p }

type negate struct {
	x node
	p int
}

func (n *negate) eval(e Event) (value, error) {
	v, err := evalAs(n.x, e, kInt)
	if err != nil {
		return value{}, err
	}
	if v.n == math.MinInt32 {
		return value{}, &evalError{n.p, "integer overflow"}
	}
	return intValue(-v.n), nil
}
func (n *negate) kind() kind { return kInt }
func (n *negate) pos() int   { return n.p }

// logic is AND, OR or XOR; AND and OR skip the right operand when the left decides.
type logic struct {
	op   string
	l, r node
}

func (n *logic) eval(e Event) (value, error) {
	l, err := evalAs(n.l, e, kBool)
	if err != nil {
		return value{}, err
	}
	switch {
	case n.op == "AND" && l.n == 0:
		return l, nil
	case n.op == "OR" && l.n != 0:
		return l, nil
	}
	r, err := evalAs(n.r, e, kBool)
	if err != nil {
		return value{}, err
	}
	if n.op == "XOR" {
		return boolValue(l.n != r.n), nil
	}
	return r, nil
}
func (n *logic) kind() kind { return kBool }
func (n *logic) pos() int   { return n.l.pos() }

// compare is = != <> (the left operand cast to the right's kind) or < <= > >= (integers).
type compare struct {
	op   tokKind
	l, r node
}

func (n *compare) eval(e Event) (value, error) {
	if n.op == tEq || n.op == tNe {
		l, err := n.l.eval(e)
		if err != nil {
			return value{}, err
		}
		r, err := n.r.eval(e)
		if err != nil {
			return value{}, err
		}
		if l, err = cast(l, r.k, n.l.pos()); err != nil {
			return value{}, err
		}
		return boolValue((l == r) == (n.op == tEq)), nil
	}
	l, err := evalAs(n.l, e, kInt)
	if err != nil {
		return value{}, err
	}
	r, err := evalAs(n.r, e, kInt)
	if err != nil {
		return value{}, err
	}
	switch n.op {
	case tLt:
		return boolValue(l.n < r.n), nil
	case tLe:
		return boolValue(l.n <= r.n), nil
	case tGt:
		return boolValue(l.n > r.n), nil
	}
	return boolValue(l.n >= r.n), nil
}
func (n *compare) kind() kind { return kBool }
func (n *compare) pos() int   { return n.l.pos() }

// arith is + - * / % on 32-bit integers; overflow and division by zero are errors.
type arith struct {
	op   tokKind
	p    int // the operator's position
	l, r node
}

func (n *arith) eval(e Event) (value, error) {
	l, err := evalAs(n.l, e, kInt)
	if err != nil {
		return value{}, err
	}
	r, err := evalAs(n.r, e, kInt)
	if err != nil {
		return value{}, err
	}
	a, b := int64(l.n), int64(r.n)
	var z int64
	switch n.op {
	case tPlus:
		z = a + b
	case tMinus:
		z = a - b
	case tStar:
		z = a * b
	default:
		if b == 0 {
			return value{}, &evalError{n.p, "division by zero"}
		}
		if n.op == tSlash {
			z = a / b
		} else {
			z = a % b
		}
	}
	if z < math.MinInt32 || z > math.MaxInt32 {
		return value{}, &evalError{n.p, "integer overflow"}
	}
	return intValue(int32(z)), nil
}
func (n *arith) kind() kind { return kInt }
func (n *arith) pos() int   { return n.l.pos() }

type like struct {
	x      node
	pat    likePattern
	negate bool
}

func (n *like) eval(e Event) (value, error) {
	v, err := evalAs(n.x, e, kString)
	if err != nil {
		return value{}, err
	}
	return boolValue(n.pat.match(v.s) != n.negate), nil
}
func (n *like) kind() kind { return kBool }
func (n *like) pos() int   { return n.x.pos() }

// in compares the left operand with each element in turn, cast to the left's kind.
type in struct {
	x      node
	set    []node
	negate bool
}

func (n *in) eval(e Event) (value, error) {
	x, err := n.x.eval(e)
	if err != nil {
		return value{}, err
	}
	for _, m := range n.set {
		v, err := evalAs(m, e, x.k)
		if err != nil {
			return value{}, err
		}
		if v == x {
			return boolValue(!n.negate), nil
		}
	}
	return boolValue(n.negate), nil
}
func (n *in) kind() kind { return kBool }
func (n *in) pos() int   { return n.x.pos() }

// function is a built-in: CONCAT takes any number of strings, the others one argument.
type function struct {
	param  kind // of every argument
	result kind
}

var functions = map[string]function{
	"LENGTH": {kString, kInt},
	"UPPER":  {kString, kString},
	"LOWER":  {kString, kString},
	"CONCAT": {kString, kString},
	"ABS":    {kInt, kInt},
	"INT":    {kInt, kInt},
	"STRING": {kString, kString},
}

type call struct {
	name string // upper-case
	fn   function
	args []node
	p    int
}

func (n *call) eval(e Event) (value, error) {
	if n.name == "CONCAT" {
		var b strings.Builder
		for _, a := range n.args {
			v, err := evalAs(a, e, kString)
			if err != nil {
				return value{}, err
			}
			b.WriteString(v.s)
		}
		return stringValue(b.String()), nil
	}
	v, err := evalAs(n.args[0], e, n.fn.param)
	if err != nil {
		return value{}, err
	}
	switch n.name {
	case "LENGTH":
		c := utf8.RuneCountInString(v.s)
		if c > math.MaxInt32 {
			return value{}, &evalError{n.p, "integer overflow"}
		}
		return intValue(int32(c)), nil
	case "UPPER":
		return stringValue(strings.ToUpper(v.s)), nil
	case "LOWER":
		return stringValue(strings.ToLower(v.s)), nil
	case "ABS":
		if v.n == math.MinInt32 {
			return value{}, &evalError{n.p, "integer overflow"}
		}
		if v.n < 0 {
			return intValue(-v.n), nil
		}
	}
	return v, nil // INT and STRING: the cast is the result
}
func (n *call) kind() kind { return n.fn.result }
func (n *call) pos() int   { return n.p }
