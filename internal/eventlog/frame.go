package eventlog

import (
	"encoding/binary"
	"hash/crc32"
)

// A record on disk is one frame:
//
//	crc32c   uint32  little endian, over every byte after it (length, offset, payload)
//	length   uint32  payload length
//	offset   uint64  the record's offset
//	payload  [length]byte
//
// Putting the offset in the frame lets recovery tell a valid record from a stale or misplaced
// one, and lets Read check that the file is where the index said.
const frameHeader = 16

// MaxPayload is the largest payload Append accepts (16 MiB).
const MaxPayload = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameSize is the bytes a payload of n bytes takes on disk.
func frameSize(n int) int64 { return frameHeader + int64(n) }

// appendFrame appends the frame of one record to buf.
func appendFrame(buf []byte, offset uint64, payload []byte) []byte {
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, 0) // crc, filled in below
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
	buf = binary.LittleEndian.AppendUint64(buf, offset)
	buf = append(buf, payload...)
	crc := crc32.Checksum(buf[start+4:], castagnoli)
	binary.LittleEndian.PutUint32(buf[start:], crc)
	return buf
}

// frameStatus says what parseFrame found at the start of a buffer.
type frameStatus int

const (
	frameOK      frameStatus = iota
	frameShort               // the buffer ends before the frame does
	frameCorrupt             // bad checksum, impossible length, or wrong offset
)

// parseFrame reads the frame at the start of b, expecting the record numbered want. It returns
// the payload (aliasing b) and the frame's size. A length that claims more than MaxPayload is
// corrupt rather than short, so a torn header cannot make the caller read gigabytes.
func parseFrame(b []byte, want uint64) (payload []byte, size int64, st frameStatus) {
	if len(b) < frameHeader {
		return nil, 0, frameShort
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if n > MaxPayload {
		return nil, 0, frameCorrupt
	}
	size = frameSize(int(n))
	if int64(len(b)) < size {
		return nil, size, frameShort
	}
	if crc32.Checksum(b[4:size], castagnoli) != binary.LittleEndian.Uint32(b) {
		return nil, size, frameCorrupt
	}
	if binary.LittleEndian.Uint64(b[8:]) != want {
		return nil, size, frameCorrupt
	}
	return b[frameHeader:size:size], size, frameOK
}
