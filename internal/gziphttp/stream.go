package gziphttp

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash"
	"hash/crc32"
	"io"
	"sync"
)

// Deflated is a piece of an answer compressed once, to be written into
// many gzip streams: its bytes and their raw deflate compression, which
// ends in a sync flush and refers to nothing before it.
type Deflated struct {
	Plain      []byte
	Compressed []byte
}

// Deflater compresses pieces for Streams. It keeps its compressors for
// the next piece: a compressor's tables are several hundred kilobytes,
// more than most pieces. Its zero value is ready; it is safe for
// concurrent use.
type Deflater struct {
	compressors sync.Pool
}

// Deflate compresses p for a Stream.
func (d *Deflater) Deflate(p []byte) Deflated {
	var buf bytes.Buffer
	fw, ok := d.compressors.Get().(*flate.Writer)
	if ok {
		fw.Reset(&buf)
	} else {
		fw, _ = flate.NewWriter(&buf, flate.BestSpeed) // the level is valid
	}
	_, _ = fw.Write(p) // a bytes.Buffer does not fail
	_ = fw.Flush()
	d.compressors.Put(fw)
	return Deflated{Plain: p, Compressed: buf.Bytes()}
}

// finalBlock is an empty final deflate block (RFC 1951, section 3.2.4),
// stored, which ends a deflate stream at a byte boundary: BFINAL set and
// BTYPE 00 in the first byte, then LEN 0 and its complement.
var finalBlock = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

// gzipHeader is a gzip member's header (RFC 1952): deflate, no flags, no
// modification time, unknown operating system.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// Stream writes one gzip member made of pieces compressed beforehand
// (WriteDeflated) and bytes compressed as they are written (Write), so an
// answer whose larger part changes rarely is compressed once rather than
// per request. A deflate stream may be cut into blocks at any byte-aligned
// point, which a sync flush makes: the pieces are put one after another,
// and what Write compresses never refers back across a piece written
// beforehand.
type Stream struct {
	w    io.Writer
	fw   *flate.Writer
	crc  hash.Hash32
	size uint32
	// fresh is false while fw holds a dictionary from bytes written
	// before the last piece, which it must not refer to.
	fresh bool
	err   error
}

// NewStream starts a gzip member on w.
func NewStream(w io.Writer) *Stream {
	s := &Stream{w: w, crc: crc32.NewIEEE()}
	_, s.err = w.Write(gzipHeader)
	return s
}

// Write compresses p into the stream.
func (s *Stream) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	switch {
	case s.fw == nil:
		s.fw, _ = flate.NewWriter(s.w, flate.BestSpeed)
	case !s.fresh:
		s.fw.Reset(s.w)
	}
	s.fresh = true
	n, err := s.fw.Write(p)
	s.account(p[:n])
	s.err = err
	return n, err
}

// WriteDeflated puts a piece compressed beforehand into the stream.
func (s *Stream) WriteDeflated(d Deflated) error {
	if s.err = s.flush(); s.err != nil {
		return s.err
	}
	if _, s.err = s.w.Write(d.Compressed); s.err != nil {
		return s.err
	}
	s.account(d.Plain)
	return nil
}

// Close ends the deflate stream and writes the member's trailer. It does
// not close the underlying writer.
func (s *Stream) Close() error {
	if s.err = s.flush(); s.err != nil {
		return s.err
	}
	if _, s.err = s.w.Write(finalBlock); s.err != nil {
		return s.err
	}
	trailer := binary.LittleEndian.AppendUint32(nil, s.crc.Sum32())
	trailer = binary.LittleEndian.AppendUint32(trailer, s.size)
	_, s.err = s.w.Write(trailer)
	return s.err
}

// flush ends what Write compressed at a byte boundary, so a piece can
// follow, and marks the compressor's dictionary as stale.
func (s *Stream) flush() error {
	if s.err != nil {
		return s.err
	}
	if s.fw == nil || !s.fresh {
		return nil
	}
	s.fresh = false
	return s.fw.Flush()
}

func (s *Stream) account(p []byte) {
	_, _ = s.crc.Write(p)
	s.size += uint32(len(p)) // ISIZE is the size modulo 2^32
}
