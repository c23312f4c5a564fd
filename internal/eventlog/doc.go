// Package eventlog is the durable log under a broker: an event is acknowledged only once it is
// on disk, and each consumer (a trigger) keeps its own durable position in it.
//
// # Appending
//
// Append returns a record's offset once the record is written and fdatasync'd. Producers do not
// sync one by one: a single writer goroutine takes every record queued since its last write,
// writes them with one write, syncs once and releases all their producers (group commit), so
// under load many producers share each sync. Offsets are dense, start at 1 and grow by one per
// record; 0 means "no record".
//
// # On disk
//
// A log is a directory of segments, append-only files named by the offset of their first record
// (00000000000000000001.log), and a new one is started once the active one would pass
// Options.SegmentBytes. Each record is framed with its length, its offset and a CRC32C
// (Castagnoli) checksum. A sealed segment has an index file (00000000000000000001.index) with
// one entry every 4 KiB, so a Read seeks instead of scanning; Open rebuilds an index that is
// missing or stale. Before a new segment is started the old one is synced, so after a crash
// only the last segment can end in a torn record: Open cuts the last segment at its first bad
// frame, which loses nothing that was acknowledged. A bad frame anywhere else is damage, not a
// crash, and is reported as a *CorruptError naming the file and byte: by Open when it scans a
// segment (always the last one; a sealed one when its index must be rebuilt), and by every Read
// that meets it, since Read checks each record it returns.
//
// The active segment may end in zeros the writer wrote and synced ahead of its last record,
// so that a commit's fdatasync overwrites blocks instead of growing the file (which would
// commit the file system's journal too). A zero frame fails its checks like a torn one, so
// Open cuts the zeros off with the tail (TruncatedBytes does not count them); sealing a
// segment and Close cut them off first.
//
// # Reading and cursors
//
// Read returns durable records from an offset on; Wait blocks until there is one past a given
// offset, without polling. A Cursor is a consumer's position: acks may arrive in any order, and
// the position is the highest offset at and below which all are acked. Positions are written
// to a small file per cursor every Options.CursorSyncEvery, not on each ack, so delivery is at
// least once: after a crash a consumer resumes from its last written position and gets the
// records after it again. The file has two slots and each write goes over the older one in
// place, so a sync costs one data write and no journal commit.
//
// # Retention
//
// Compact, and a background loop when Options.MaxAge or Options.MaxBytes is set, deletes whole
// sealed segments, oldest first. As with a Knative broker, retention does not wait for slow
// consumers: a cursor left behind the oldest kept record moves up to it, and Cursor.Skipped
// counts the records it lost.
//
// The benchmark of this package's costs: go run ./bench/eventlog
//
// This package is a leaf: it must never import other Flick packages.
package eventlog
