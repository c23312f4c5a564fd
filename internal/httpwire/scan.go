package httpwire

import (
	"bufio"
	"bytes"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// RawHead is a response head scanned in place, for a proxy that passes its fields on as
// they arrived instead of building a header map only to write it out again.
type RawHead struct {
	Head
	Status         []byte // the status line after the version: "200 OK"
	Fields         []byte // the field lines, each ending in CRLF
	Size           int    // the head's bytes, blank line included
	Connection     []byte // the Connection field's value, for the fields it names
	HasDate        bool
	HasContentType bool
	EventStream    bool // Content-Type text/event-stream: the body is a stream
}

var crlf2 = []byte("\r\n\r\n")

// ScanHead scans the response head at the start of buf. complete is false when the head
// has not all arrived; plain is false when it has something a copy as it is must not pass
// on (bare line feeds, folded lines, invalid names or values, a repeated or malformed
// Content-Length, an odd status line): ReadHead is then the way to read it. The slices
// point into buf.
func ScanHead(buf []byte) (h RawHead, complete, plain bool) {
	h.ContentLength = -1
	end := bytes.Index(buf, crlf2)
	if end < 0 {
		return h, false, false
	}
	h.Size = end + 4
	head := buf[:end+2]
	nl := bytes.IndexByte(head, '\n')
	line := head[:nl]
	// "HTTP/1.1 200 OK\r"
	if len(line) < 13 || line[len(line)-1] != '\r' || string(line[:7]) != "HTTP/1." || line[8] != ' ' ||
		(line[7] != '1' && line[7] != '0') {
		return h, true, false
	}
	h.Close = line[7] == '0' // HTTP/1.0 keeps the connection only when asked; we never ask
	c := line[9:12]
	if c[0] < '1' || c[0] > '9' || c[1] < '0' || c[1] > '9' || c[2] < '0' || c[2] > '9' || (len(line) > 13 && line[12] != ' ') {
		return h, true, false
	}
	h.Code = int(c[0]-'0')*100 + int(c[1]-'0')*10 + int(c[2]-'0')
	h.Status = line[9 : len(line)-1]
	for _, b := range h.Status {
		if b < ' ' && b != '\t' || b == 0x7f {
			return h, true, false // a bare CR in the reason could end the line for some clients
		}
	}
	h.Fields = head[nl+1:]
	for rest := h.Fields; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 1 || rest[i-1] != '\r' {
			return h, true, false
		}
		line, value, ok := field(rest[:i-1])
		rest = rest[i+1:]
		if !ok {
			return h, true, false
		}
		switch {
		case equalFold(line, "Content-Length"):
			n, ok := digits(value)
			if !ok || h.ContentLength >= 0 {
				return h, true, false
			}
			h.ContentLength = n
		case equalFold(line, "Transfer-Encoding"):
			h.Chunked = true // whatever the coding: ReadHead's way decides
		case equalFold(line, "Connection"):
			if h.Connection != nil {
				return h, true, false // two of them: ReadHead's way joins them
			}
			h.Connection = value
			h.Close = h.Close || Listed(string(value), "close")
		case equalFold(line, "Date"):
			h.HasDate = true
		case equalFold(line, "Content-Type"):
			h.HasContentType = true
			h.EventStream = len(value) >= 17 && equalFold(value[:17], "text/event-stream")
		}
	}
	return h, true, true
}

// field splits a field line into its name and trimmed value, checking both.
func field(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name = line[:colon]
	for _, c := range name {
		if !httpguts.IsTokenRune(rune(c)) {
			return nil, nil, false
		}
	}
	value = line[colon+1:]
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	for len(value) > 0 && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
		value = value[:len(value)-1]
	}
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, false
		}
	}
	return name, value, true
}

// CopyFields writes the field lines of a head ScanHead found plain, leaving out
// hop-by-hop fields, those its Connection field names, and Content-Length (the proxy frames
// the body itself).
func CopyFields(bw *bufio.Writer, h *RawHead) {
	for rest := h.Fields; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i+1]
		rest = rest[i+1:]
		name := line[:bytes.IndexByte(line, ':')]
		if skipField(name) || len(h.Connection) > 0 && Listed(string(h.Connection), string(name)) {
			continue
		}
		bw.Write(line)
	}
}

// skipField reports the fields a proxy does not copy: HopHeaders and Content-Length.
func skipField(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "Te")
	case 7:
		return equalFold(name, "Trailer") || equalFold(name, "Upgrade")
	case 10:
		return equalFold(name, "Connection") || equalFold(name, "Keep-Alive")
	case 14:
		return equalFold(name, "Content-Length")
	case 16:
		return equalFold(name, "Proxy-Connection")
	case 17:
		return equalFold(name, "Transfer-Encoding")
	case 18:
		return equalFold(name, "Proxy-Authenticate")
	case 19:
		return equalFold(name, "Proxy-Authorization")
	}
	return false
}

// equalFold is ASCII case-insensitive equality of b and s.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// digits parses a non-negative decimal of at most 18 digits.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Listed reports whether the comma-separated list (a Connection field's value) has name,
// in any case. A proxy drops the fields a Connection field names (RFC 9110 7.6.1).
func Listed(list, name string) bool {
	for len(list) > 0 {
		tok := list
		if i := strings.IndexByte(list, ','); i >= 0 {
			tok, list = list[:i], list[i+1:]
		} else {
			list = ""
		}
		if strings.EqualFold(strings.Trim(tok, " \t"), name) {
			return true
		}
	}
	return false
}
