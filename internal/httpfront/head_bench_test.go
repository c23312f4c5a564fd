package httpfront

import "testing"

func BenchmarkParseHead(b *testing.B) {
	head := "POST /brokers/default/bench1 HTTP/1.1\r\nHost: 127.0.0.1:38211\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 7\r\nCe-Id: bench1-12345\r\nCe-Source: /bench\r\nCe-Specversion: 1.0\r\nCe-Type: bench\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n"
	b.ReportAllocs()
	var fields []Field
	for b.Loop() {
		h, ok := parseHead(head, fields)
		fields = h.fields
		if !ok {
			b.Fatal("not parsed")
		}
	}
}
