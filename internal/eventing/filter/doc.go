// Package filter decides whether an event passes a trigger's filters: Knative Eventing's
// legacy spec.filter.attributes and the CloudEvents Subscriptions API dialects of
// spec.filters, CloudEvents SQL (CESQL) included. A trigger's filters are compiled once, when
// it is applied, and matched per event as pure functions of the event's attributes: no I/O, no
// clock, no locks, safe for concurrent use. It must never import other Flick packages except
// pkg/apis (for its field errors), nor anything that does I/O.
//
// # Events
//
// Filters read an event through [Event]: the string value of a context attribute or extension
// by its lower-case name, and whether the event has it. [Attributes] is an Event backed by a
// map; [FromCloudEvent] adapts an event of the CloudEvents Go SDK.
//
// # spec.filter.attributes
//
// Every listed attribute must be present and equal the value exactly (case-sensitive). An
// empty value is Knative's wildcard: it matches any value, but the attribute must be present
// and not empty. Names are CloudEvents attribute names: a lower-case letter, then lower-case
// letters and digits. When spec.filters has any entry, spec.filter is ignored, as in Knative.
//
// # spec.filters
//
// The entries are ANDed; no entries match every event. Each entry sets exactly one dialect:
//
//   - exact: {attr: value}, the attribute is present and equals value.
//   - prefix: {attr: value}, the attribute is present and starts with value.
//   - suffix: {attr: value}, the attribute is present and ends with value.
//   - all: [filters], every nested filter matches (at least one filter).
//   - any: [filters], at least one nested filter matches (at least one filter).
//   - not: filter, the nested filter does not match.
//   - cesql: an expression (below) that evaluates to true.
//
// exact, prefix and suffix name exactly one attribute with a non-empty value, as Knative
// requires. Comparisons are case-sensitive. A not around a cesql expression matches the events
// the expression does not, including those it fails to evaluate on (a missing attribute),
// as in Knative.
//
// # CESQL
//
// The supported subset of CloudEvents SQL 1.0:
//
//   - Attributes: a name of lower-case letters and digits (type, source, myext2) is the value
//     of that context attribute or extension, always a string. Keywords are reserved and
//     cannot name attributes.
//   - Literals: strings in single or double quotes. Inside one, the quote character doubled
//     or after a backslash stands for itself ('it\'s', "say \"hi\""); any other backslash
//     is kept as written, so LIKE sees its escapes. Integers are 32-bit: 0 to 2147483647,
//     and down to -2147483648 with a minus. Booleans are TRUE and FALSE.
//   - Keywords (AND OR XOR NOT LIKE IN EXISTS TRUE FALSE) and function names are
//     case-insensitive. Spaces, tabs and newlines separate tokens.
//   - x LIKE 'pattern': % matches any run of characters, _ exactly one; \% and \_ match a
//     literal % and _. The pattern must be a string literal.
//   - x IN (a, b, ...): x equals one of the list (one value at least).
//   - EXISTS attr: the event has the attribute.
//   - Functions: LENGTH(s) (in characters), UPPER(s), LOWER(s), CONCAT(s, ...) (any number of
//     arguments), ABS(n), and the casts INT(x) and STRING(x).
//
// Operators, from the tightest binding to the loosest; binary operators of one level group
// from the left, and comparisons do not chain (a = b = c is an error):
//
//	( )  function calls  EXISTS attr
//	unary -
//	*  /  %            (integers; division truncates towards zero)
//	+  -
//	=  !=  <>  <  <=  >  >=  [NOT] LIKE  [NOT] IN
//	NOT
//	AND
//	XOR
//	OR
//
// Types follow the specification. Arithmetic, unary minus and < <= > >= cast their operands
// to integers; AND, OR, XOR and NOT to booleans; LIKE and string functions to strings. = != <>
// cast the left operand to the type of the right one (count = 5 compares integers, 5 = count
// compares strings) and IN casts the list to the type of the left operand. A string casts to
// an integer when it is a decimal integer ('+5', '-12'), to a boolean when it is true or false
// in any case; a boolean casts to 1 or 0 and to 'true' or 'false'; an integer casts to its
// decimal string but never to a boolean. Casts that always fail (NOT 5, 'x' + 1) are rejected
// when the expression is parsed, and so is an expression whose result is not a boolean.
//
// An expression that cannot be evaluated for an event does not match it: when it reads a
// missing attribute (use EXISTS to test), casts a value that does not convert (count = 5 with
// count = "five"), divides by zero or overflows 32 bits. The whole expression then fails, not
// only the comparison, as in Knative and the specification's filter rule: missing = 'x' OR
// type = 'y' does not match an event without missing. AND and OR skip their right operand
// when the left decides, so EXISTS count AND count > 5 is safe. [Expression.Eval] says why an
// event did not match.
//
// Not supported: TRIM, LEFT, RIGHT, SUBSTRING, CONCAT_WS and BOOL, user-defined functions,
// unary plus. The specification leaves operator precedence open; the CloudEvents Go SDK,
// which Knative uses, binds NOT tighter than comparisons and puts AND, OR and XOR on one level
// grouped from the right, so NOT a = 'x' and a AND b OR c differ from here. Parenthesize
// expressions that must behave alike on both.
package filter
