package gziphttp

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"
)

// TestStream: pieces compressed beforehand and bytes compressed as written,
// in any order, make one gzip member that decodes to the bytes in order.
// The written bytes repeat across pieces, so a compressor that referred
// back across a piece would decode wrongly.
func TestStream(t *testing.T) {
	live := []byte(strings.Repeat("go_goroutines 42\nprocess_cpu_seconds_total 1.5\n", 20))
	var d Deflater
	piece := d.Deflate([]byte(strings.Repeat("llm_requests_running{instance=\"a:1\"} 3\n", 50)))
	other := d.Deflate([]byte("perfagent_setting_info{setting=\"max_num_seqs\"} 1\n"))
	type step struct {
		plain []byte
		piece *Deflated
	}
	for name, steps := range map[string][]step{
		"nothing":             {},
		"written only":        {{plain: live}},
		"pieces only":         {{piece: &piece}, {piece: &other}},
		"written then pieces": {{plain: live}, {piece: &piece}, {piece: &other}},
		"interleaved":         {{piece: &piece}, {plain: live}, {plain: live}, {piece: &other}, {plain: live}, {piece: &piece}},
	} {
		var out bytes.Buffer
		var want []byte
		s := NewStream(&out)
		for _, st := range steps {
			if st.piece != nil {
				if err := s.WriteDeflated(*st.piece); err != nil {
					t.Fatal(err)
				}
				want = append(want, st.piece.Plain...)
				continue
			}
			if _, err := s.Write(st.plain); err != nil {
				t.Fatal(err)
			}
			want = append(want, st.plain...)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(&out)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: decoding: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: decoded %d bytes, want the %d written", name, len(got), len(want))
		}
		if rest, _ := io.ReadAll(&out); len(rest) != 0 {
			t.Errorf("%s: %d bytes after the gzip member", name, len(rest))
		}
	}
}
