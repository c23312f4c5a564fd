package kafka

import (
	"slices"
	"strconv"
	"strings"
)

// Kafka commits one offset per partition, and everything before it counts as done. With
// several records of a partition handled at once, or one being retried, later records
// finish first; the commit cannot pass the earliest one still under way. So the commit's
// metadata says which later records are done too, and the consumer that reads the
// partition next (this one after a rebalance, or another server) skips them.
//
// The metadata, for a commit at offset c:
//
//	flick1:<span>[,<hole>...]
//
// in base 36: every record in [c, c+span) is done except c itself and c+hole for each
// hole. It is empty when nothing after c is done. Holes are the records under way, so
// their number is bounded by Concurrency (and by what one poll returns).
const metadataPrefix = "flick1:"

// maxMetadata keeps the metadata under Kafka's offset.metadata.max.bytes (4096 by default);
// past it, the span is cut short and the records after the cut are delivered again.
const maxMetadata = 4000

// tracker follows one partition for one assignment: which records it fetched and which of
// those are done. It is a plain value: the session locks around it.
type tracker struct {
	// pos is the offset after the last record fetched in this assignment; -1 when the group
	// had no commit and nothing was fetched yet.
	pos int64
	// Records in [commit offset, high) are done, except those in holes; high is -1 while
	// there is nothing to commit.
	high int64
	// holes are the records below high that are not done, ascending; the first one is the
	// commit offset.
	holes []int64
	// dirty says the commit changed since it was last taken.
	dirty bool
	// revoked says the partition went to another consumer: what finishes now is dropped.
	revoked bool
}

// newTracker starts from the group's commit (-1: none) and its metadata.
func newTracker(committed int64, metadata string) *tracker {
	if committed < 0 {
		return &tracker{pos: -1, high: -1}
	}
	high, holes := decodeMetadata(committed, metadata)
	return &tracker{pos: committed, high: high, holes: holes}
}

// fetched records that the record at offset o arrived, and says whether to handle it:
// false when a commit's metadata said it was done already.
func (t *tracker) fetched(o int64) bool {
	if o < t.pos {
		// The log went back (the topic was recreated, the offset reset): what the commit
		// said about it no longer applies.
		*t = tracker{pos: -1, high: -1, dirty: true}
	}
	if t.pos >= 0 {
		// Fetching is in order, so holes from the commit's metadata below o that did not
		// arrive are gone (compacted away or expired): nothing is left to do for them.
		i, j := holeRange(t.holes, t.pos, o)
		if i < j {
			t.holes = slices.Delete(t.holes, i, j)
			t.dirty = true
		}
	}
	t.pos = o + 1
	if o < t.high {
		_, under := slices.BinarySearch(t.holes, o)
		return under
	}
	// Offsets between high and o hold no records (transaction markers, compaction).
	t.holes = append(t.holes, o)
	t.high = o + 1
	return true
}

// holeRange is the index range of holes in [from, to).
func holeRange(holes []int64, from, to int64) (int, int) {
	i, _ := slices.BinarySearch(holes, from)
	j, _ := slices.BinarySearch(holes, to)
	return i, j
}

// done records that the record at offset o was handled.
func (t *tracker) done(o int64) {
	if i, ok := slices.BinarySearch(t.holes, o); ok {
		t.holes = slices.Delete(t.holes, i, i+1)
		t.dirty = true
	}
}

// commit is the offset and metadata to commit; ok is false while nothing is known.
func (t *tracker) commit() (offset int64, metadata string, ok bool) {
	if t.high < 0 {
		return 0, "", false
	}
	if len(t.holes) == 0 {
		return t.high, "", true
	}
	offset = t.holes[0]
	return offset, encodeMetadata(offset, t.high, t.holes[1:]), true
}

// encodeMetadata writes the span [c, high) with holes (each above c); see metadataPrefix.
func encodeMetadata(c, high int64, holes []int64) string {
	size := len(metadataPrefix) + len(strconv.FormatInt(high-c, 36))
	deltas := make([]string, 0, len(holes))
	for _, h := range holes {
		d := strconv.FormatInt(h-c, 36)
		if size+1+len(d) > maxMetadata {
			// End the span at this hole: it and everything after it count as not done.
			// The span only gets shorter, so the size still holds.
			high = h
			break
		}
		size += 1 + len(d)
		deltas = append(deltas, d)
	}
	s := metadataPrefix + strconv.FormatInt(high-c, 36)
	if len(deltas) > 0 {
		s += "," + strings.Join(deltas, ",")
	}
	return s
}

// decodeMetadata reads what encodeMetadata wrote for a commit at c: the end of the span
// and the holes, c first. Metadata that is not ours (another client's, or none) says
// nothing is done after c.
func decodeMetadata(c int64, metadata string) (high int64, holes []int64) {
	rest, ok := strings.CutPrefix(metadata, metadataPrefix)
	if !ok {
		return c, nil
	}
	fields := strings.Split(rest, ",")
	span, err := strconv.ParseInt(fields[0], 36, 64)
	if err != nil || span <= 0 {
		return c, nil
	}
	holes = []int64{c}
	for _, f := range fields[1:] {
		d, err := strconv.ParseInt(f, 36, 64)
		if err != nil || d <= holes[len(holes)-1]-c || d >= span {
			return c, nil
		}
		holes = append(holes, c+d)
	}
	return c + span, holes
}

// doneAfter counts the records a commit at c says are done after it, for Lag.
func doneAfter(c int64, metadata string) int64 {
	high, holes := decodeMetadata(c, metadata)
	if high == c {
		return 0
	}
	return high - c - int64(len(holes))
}
