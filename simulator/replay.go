package simulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// ReplayOptions configure Replay.
type ReplayOptions struct {
	// Start is the simulated time of the first sample.
	Start time.Time
	// Duration is how long to simulate; Step is the sample interval (a scrape interval).
	Duration, Step time.Duration
	// Job is the job label of every sample; each also gets instance="<listen address>".
	Job string
	// TempDir holds per-family spill files while writing; empty means os.TempDir().
	TempDir string
}

// sampleServer runs s over the replay span and appends each series' samples to bufs,
// which is reused between servers.
func sampleServer(s *Server, opts ReplayOptions, bufs [][][]byte) [][][]byte {
	for i := range bufs {
		for j := range bufs[i] {
			bufs[i][j] = bufs[i][j][:0]
		}
	}
	inst := label{"instance", s.cfg.Listen}
	job := label{"job", opts.Job}
	for t := opts.Start; !t.After(opts.Start.Add(opts.Duration)); t = t.Add(opts.Step) {
		s.Advance(t)
		ts := formatTimestamp(t)
		s.mu.Lock()
		for len(bufs) < len(s.families) {
			bufs = append(bufs, nil)
		}
		for i := range s.families {
			f := &s.families[i]
			for len(bufs[i]) < len(f.series) {
				bufs[i] = append(bufs[i], nil)
			}
			for j := range f.series {
				bufs[i][j] = appendOMPoint(bufs[i][j], f, &f.series[j], inst, job, ts)
			}
		}
		s.mu.Unlock()
	}
	return bufs
}

// spillServer appends a sampled server's series to the per-family spill files.
func spillServer(s *Server, bufs [][][]byte, spills map[string]*spill, order *[]*spill, dir string) error {
	s.mu.Lock()
	fams := s.families
	s.mu.Unlock()
	for i := range fams {
		f := &fams[i]
		sp, ok := spills[f.name]
		if !ok {
			file, err := os.CreateTemp(dir, "llmsim-replay-*")
			if err != nil {
				return fmt.Errorf("creating spill file: %w", err)
			}
			sp = &spill{name: f.omName(), help: f.help, typ: f.typ.String(), f: file, w: bufio.NewWriterSize(file, 64<<10)}
			if f.typ == typeCounter && s.cfg.Engine == EngineTGI {
				sp.name, sp.typ = f.name, "unknown"
			}
			spills[f.name] = sp
			*order = append(*order, sp)
		}
		if i >= len(bufs) {
			continue
		}
		for j := range bufs[i] {
			if _, err := sp.w.Write(bufs[i][j]); err != nil {
				return fmt.Errorf("writing spill file: %w", err)
			}
		}
	}
	return nil
}

// spill collects one metric family's samples from every server.
type spill struct {
	name, help, typ string
	f               *os.File
	w               *bufio.Writer
}

// Replay simulates cfg from opts.Start for opts.Duration and writes OpenMetrics text with
// timestamps (seconds) for every server, sampled every opts.Step, ending with "# EOF".
// Families are not interleaved and each series is contiguous in time, as OpenMetrics
// requires; series names are those a Prometheus scrape of the engine would store (TGI
// counters, which have no _total suffix, are typed unknown).
func Replay(ctx context.Context, cfg *FleetConfig, opts ReplayOptions, w io.Writer) (err error) {
	if opts.Step <= 0 || opts.Duration < 0 {
		return errors.New("replay needs a positive step and a non-negative duration")
	}
	fleet, err := NewFleet(cfg, opts.Start)
	if err != nil {
		return err
	}
	var order []*spill
	spills := map[string]*spill{}
	defer func() {
		for _, sp := range order {
			sp.f.Close()
			os.Remove(sp.f.Name())
		}
	}()
	servers := fleet.Servers()
	workers := max(1, min(runtime.GOMAXPROCS(0), len(servers)))
	bufs := make([][][][]byte, workers) // per worker: per family, per series
	for lo := 0; lo < len(servers); lo += workers {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := servers[lo:min(lo+workers, len(servers))]
		var wg sync.WaitGroup
		for i, s := range batch {
			wg.Go(func() { bufs[i] = sampleServer(s, opts, bufs[i]) })
		}
		wg.Wait()
		for i, s := range batch {
			if err := spillServer(s, bufs[i], spills, &order, opts.TempDir); err != nil {
				return err
			}
		}
	}
	out := bufio.NewWriterSize(w, 256<<10)
	for _, sp := range order {
		if sp.help != "" {
			fmt.Fprintf(out, "# HELP %s %s\n", sp.name, escapeOMHelp(sp.help))
		}
		fmt.Fprintf(out, "# TYPE %s %s\n", sp.name, sp.typ)
		if err := sp.w.Flush(); err != nil {
			return fmt.Errorf("flushing spill file: %w", err)
		}
		if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("reading spill file: %w", err)
		}
		if _, err := io.Copy(out, sp.f); err != nil {
			return fmt.Errorf("copying samples: %w", err)
		}
	}
	out.WriteString("# EOF\n")
	return out.Flush()
}

func escapeOMHelp(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}

func formatTimestamp(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1e3, 'f', -1, 64)
}

// appendOMPoint writes one series' sample(s) at one timestamp.
func appendOMPoint(b []byte, f *family, se *series, inst, job label, ts string) []byte {
	line := func(b []byte, name, suffix string, extra label, v func([]byte) []byte) []byte {
		b = append(b, name...)
		b = append(b, suffix...)
		b = appendLabels(b, se.labels, extra, false, inst, job)
		b = append(b, ' ')
		b = v(b)
		b = append(b, ' ')
		b = append(b, ts...)
		return append(b, '\n')
	}
	float := func(v float64) func([]byte) []byte {
		return func(b []byte) []byte { return strconv.AppendFloat(b, v, 'g', -1, 64) }
	}
	uint := func(v uint64) func([]byte) []byte {
		return func(b []byte) []byte { return strconv.AppendUint(b, v, 10) }
	}
	switch f.typ {
	case typeCounter, typeGauge:
		b = line(b, f.name, "", label{}, float(se.value()))
	case typeSummary:
		for _, q := range []string{"0", "0.5", "0.9", "0.95", "0.99", "0.999", "1"} {
			b = line(b, f.name, "", label{"quantile", q}, float(0))
		}
		b = line(b, f.name, "_sum", label{}, float(0))
		b = line(b, f.name, "_count", label{}, float(se.value()))
	case typeHistogram:
		h := se.hist
		var cum uint64
		for i, c := range h.counts {
			cum += c
			b = line(b, f.name, "_bucket", label{"le", h.les[i]}, uint(cum))
		}
		b = line(b, f.name, "_count", label{}, uint(h.count))
		b = line(b, f.name, "_sum", label{}, float(h.sum))
	}
	return b
}
