package jetstream

import (
	"fmt"
	"strings"
)

// names derives a store's stream name and subject from its id.
func names(id string) (stream, subject string, err error) {
	for tok := range strings.SplitSeq(id, ".") {
		if !isLabel(tok) {
			return "", "", fmt.Errorf("jetstream: store id %q: %q is not a DNS label", id, tok)
		}
	}
	stream = "FLICK_" + strings.ReplaceAll(id, ".", "_")
	if len(stream) > maxNameLen {
		return "", "", fmt.Errorf("jetstream: store id %q: longer than %d characters", id, maxNameLen-len("FLICK_"))
	}
	return stream, "flick." + id, nil
}

// maxNameLen is JetStream's limit on stream and consumer names.
const maxNameLen = 255

func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// validConsumerName reports whether name suits a durable consumer (and its file on disk).
func validConsumerName(name string) bool {
	if len(name) == 0 || len(name) > maxNameLen {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_' {
			return false
		}
	}
	return true
}
