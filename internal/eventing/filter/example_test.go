package filter_test

import (
	"fmt"

	"github.com/flickdev/flick/internal/eventing/filter"
)

func ExampleCompile() {
	f, err := filter.Compile(nil, []filter.Spec{
		{Prefix: map[string]string{"type": "com.example.order."}},
		{CESQL: "NOT EXISTS test AND amount > 100"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Match(filter.Attributes{"type": "com.example.order.created", "amount": "250"}))
	fmt.Println(f.Match(filter.Attributes{"type": "com.example.order.created", "amount": "50"}))
	fmt.Println(f.Match(filter.Attributes{"type": "com.example.order.created"})) // amount is missing

	_, err = filter.Compile(nil, []filter.Spec{{CESQL: "type IN ('a', 'b'"}})
	fmt.Println(err)
	// Output:
	// true
	// false
	// false
	// spec.filters[0].cesql: at 18: expected ')' after IN list, found end of expression
}

func ExampleExpression_Eval() {
	x, err := filter.ParseCESQL("sequence = 10")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(x.Eval(filter.Attributes{"sequence": "10"}))
	fmt.Println(x.Eval(filter.Attributes{"sequence": "ten"}))
	fmt.Println(x.Eval(filter.Attributes{}))
	// Output:
	// true <nil>
	// false cesql: at 1: cannot cast string "ten" to integer
	// false cesql: at 1: the event has no attribute "sequence"
}
