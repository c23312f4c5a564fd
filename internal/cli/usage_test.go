package cli

import (
	"strings"
	"testing"

	"github.com/flickdev/flick/pkg/client"
)

func TestPrintUsageTotalsEachNamespace(t *testing.T) {
	rep := &client.UsageReport{
		Items: []client.UsageRecord{
			{Namespace: "a", Kind: "function", Name: "f", UsageCounters: client.UsageCounters{Invocations: 5, InstanceSeconds: 10, GBSeconds: 2.5}},
			{Namespace: "a", Kind: "service", Name: "s", UsageCounters: client.UsageCounters{Invocations: 1, InstanceSeconds: 2, GBSeconds: 0.5}},
			{Namespace: "b", Kind: "function", Name: "g", UsageCounters: client.UsageCounters{Invocations: 7}},
		},
		Namespaces: []client.UsageNamespace{
			{Namespace: "a", UsageCounters: client.UsageCounters{Invocations: 6, InstanceSeconds: 12, GBSeconds: 3}},
			{Namespace: "b", UsageCounters: client.UsageCounters{Invocations: 7}},
		},
	}
	var b strings.Builder
	printUsage(&b, rep, false)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		got = append(got, strings.Join(strings.Fields(line), " "))
	}
	want := []string{
		"NAMESPACE KIND NAME INVOCATIONS INSTANCE-SECONDS GB-SECONDS",
		"a function f 5 10.0 2.50",
		"a service s 1 2.0 0.50",
		"a TOTAL 6 12.0 3.00",
		"b function g 7 0.0 0.00",
		"b TOTAL 7 0.0 0.00",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLatency(t *testing.T) {
	tests := []struct {
		row  client.TopRow
		want string
	}{
		{client.TopRow{}, "-"},
		{client.TopRow{Requests: 3, P99Seconds: 0.00025}, "250µs"},
		{client.TopRow{Requests: 3, P99Seconds: 0.01234}, "12.3ms"},
		{client.TopRow{Requests: 3, P99Seconds: 2.0481}, "2.05s"},
	}
	for _, tt := range tests {
		if got := latency(tt.row); got != tt.want {
			t.Errorf("latency(%+v) = %q, want %q", tt.row, got, tt.want)
		}
	}
}
