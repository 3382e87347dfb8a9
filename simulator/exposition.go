package simulator

import (
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

type metricType uint8

const (
	typeCounter metricType = iota
	typeGauge
	typeHistogram
	typeSummary
)

func (t metricType) String() string {
	return [...]string{"counter", "gauge", "histogram", "summary"}[t]
}

type label struct{ name, value string }

// series is one labelled series of a family: a value (counter, gauge, summary count) or a
// histogram.
type series struct {
	labels []label
	value  func() float64
	hist   *histogram
}

// family is a metric family as the engine exposes it.
type family struct {
	name   string // as printed in text format 0.0.4 (counters with _total where the engine adds it)
	typ    metricType
	help   string
	series []series
}

// omName is the OpenMetrics family name: counters lose their _total suffix.
func (f *family) omName() string {
	if f.typ == typeCounter {
		return strings.TrimSuffix(f.name, "_total")
	}
	return f.name
}

// textStyle says how an engine's client library prints the text format.
type textStyle struct {
	python   bool // prometheus_client (vLLM, SGLang); otherwise Rust metrics-exporter-prometheus (TGI)
	created  bool // _created gauge families after counters and histograms
	sumFirst bool // multiprocess collector order: _sum, _bucket..., _count
}

func (s *Server) style() textStyle {
	switch {
	case s.cfg.Engine == EngineTGI:
		return textStyle{}
	case s.cfg.Engine == EngineVLLM && s.cfg.MetricsVersion != "v0":
		return textStyle{python: true, created: true}
	default:
		return textStyle{python: true, sumFirst: true}
	}
}

// WriteMetrics writes the server's /metrics page in text format 0.0.4, as the engine prints it.
func (s *Server) WriteMetrics(w io.Writer) error {
	s.mu.Lock()
	b := s.appendText(nil)
	s.mu.Unlock()
	_, err := w.Write(b)
	return err
}

func (s *Server) appendText(b []byte) []byte {
	st := s.style()
	created := pyFloat(float64(s.processStart().UnixNano()) / 1e9)
	for i := range s.families {
		f := &s.families[i]
		if st.python {
			b = appendPythonFamily(b, f, st, created)
		} else {
			b = appendRustFamily(b, f)
		}
	}
	return b
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func appendLabelValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendLabels writes {labels} with extra (le or quantile) merged in sorted position when
// sorted is set (prometheus_client sorts), or appended last otherwise.
func appendLabels(b []byte, ls []label, extra label, sorted bool, tail ...label) []byte {
	if len(ls) == 0 && extra.name == "" && len(tail) == 0 {
		return b
	}
	b = append(b, '{')
	first := true
	put := func(l label) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, l.name...)
		b = append(b, `="`...)
		b = appendLabelValue(b, l.value)
		b = append(b, '"')
	}
	done := extra.name == ""
	for _, l := range ls {
		if !done && sorted && l.name > extra.name {
			put(extra)
			done = true
		}
		put(l)
	}
	for _, l := range tail {
		put(l)
	}
	if !done {
		put(extra)
	}
	return append(b, '}')
}

func appendPythonFamily(b []byte, f *family, st textStyle, created string) []byte {
	help := escapeHelp(f.help)
	b = append(b, "# HELP "+f.name+" "+help+"\n# TYPE "+f.name+" "+f.typ.String()+"\n"...)
	for _, se := range f.series {
		switch f.typ {
		case typeCounter, typeGauge:
			b = append(b, f.name...)
			b = appendLabels(b, se.labels, label{}, true)
			b = append(b, ' ')
			b = append(b, pyFloat(se.value())...)
			b = append(b, '\n')
		case typeHistogram:
			h := se.hist
			sum := func(b []byte) []byte {
				b = append(b, f.name+"_sum"...)
				b = appendLabels(b, se.labels, label{}, true)
				return append(append(append(b, ' '), pyFloat(h.sum)...), '\n')
			}
			if st.sumFirst {
				b = sum(b)
			}
			var cum uint64
			for i, c := range h.counts {
				cum += c
				b = append(b, f.name+"_bucket"...)
				b = appendLabels(b, se.labels, label{"le", h.les[i]}, true)
				b = append(append(append(b, ' '), pyFloat(float64(cum))...), '\n')
			}
			b = append(b, f.name+"_count"...)
			b = appendLabels(b, se.labels, label{}, true)
			b = append(append(append(b, ' '), pyFloat(float64(h.count))...), '\n')
			if !st.sumFirst {
				b = sum(b)
			}
		}
	}
	if st.created && (f.typ == typeCounter || f.typ == typeHistogram) {
		base := strings.TrimSuffix(f.name, "_total")
		if f.typ == typeHistogram {
			base = f.name
		}
		b = append(b, "# HELP "+base+"_created "+help+"\n# TYPE "+base+"_created gauge\n"...)
		for _, se := range f.series {
			b = append(b, base+"_created"...)
			b = appendLabels(b, se.labels, label{}, true)
			b = append(append(append(b, ' '), created...), '\n')
		}
	}
	return b
}

func appendRustFamily(b []byte, f *family) []byte {
	if f.help != "" {
		b = append(b, "# HELP "+f.name+" "+escapeHelp(f.help)+"\n"...)
	}
	b = append(b, "# TYPE "+f.name+" "+f.typ.String()+"\n"...)
	for _, se := range f.series {
		switch f.typ {
		case typeCounter:
			b = append(b, f.name...)
			b = appendLabels(b, se.labels, label{}, false)
			b = append(append(append(b, ' '), strconv.FormatUint(uint64(se.value()), 10)...), '\n')
		case typeGauge:
			b = append(b, f.name...)
			b = appendLabels(b, se.labels, label{}, false)
			b = append(append(append(b, ' '), rustFloat(se.value())...), '\n')
		case typeSummary:
			for _, q := range []string{"0", "0.5", "0.9", "0.95", "0.99", "0.999", "1"} {
				b = append(b, f.name...)
				b = appendLabels(b, se.labels, label{"quantile", q}, false)
				b = append(b, " 0\n"...)
			}
			b = append(b, f.name+"_sum"...)
			b = appendLabels(b, se.labels, label{}, false)
			b = append(b, " 0\n"...)
			b = append(b, f.name+"_count"...)
			b = appendLabels(b, se.labels, label{}, false)
			b = append(append(append(b, ' '), strconv.FormatUint(uint64(se.value()), 10)...), '\n')
		case typeHistogram:
			h := se.hist
			var cum uint64
			for i, c := range h.counts {
				cum += c
				b = append(b, f.name+"_bucket"...)
				b = appendLabels(b, se.labels, label{"le", h.les[i]}, false)
				b = append(append(append(b, ' '), strconv.FormatUint(cum, 10)...), '\n')
			}
			b = append(b, f.name+"_sum"...)
			b = appendLabels(b, se.labels, label{}, false)
			b = append(append(append(b, ' '), rustFloat(h.sum)...), '\n')
			b = append(b, f.name+"_count"...)
			b = appendLabels(b, se.labels, label{}, false)
			b = append(append(append(b, ' '), strconv.FormatUint(h.count, 10)...), '\n')
		}
	}
	return append(b, '\n')
}

// pyFloat formats v as prometheus_client's floatToGoString does: Python repr, with values
// of more than six integer digits rewritten as d.ddde+0N.
func pyFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	s := pyRepr(v)
	dot := strings.IndexByte(s, '.')
	if v > 0 && dot > 6 {
		mantissa := strings.TrimRight(s[:1]+"."+s[1:dot]+s[dot+1:], "0.")
		return mantissa + "e+0" + strconv.Itoa(dot-1)
	}
	return s
}

// pyRepr is Python's repr(float): shortest round-trip digits, exponent form outside
// [1e-4, 1e16), and ".0" on integral values.
func pyRepr(v float64) string {
	if v == 0 {
		if math.Signbit(v) {
			return "-0.0"
		}
		return "0.0"
	}
	exp := math.Floor(math.Log10(math.Abs(v)))
	if exp < -4 || exp >= 16 {
		// Go's shortest 'e' form matches Python's (at least two exponent digits: 1e-05).
		return strconv.FormatFloat(v, 'e', -1, 64)
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// rustFloat formats v as Rust's Display for f64 does (shortest round-trip, no exponent).
func rustFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func sortedLabels(ls ...label) []label {
	out := slices.Clone(ls)
	slices.SortFunc(out, func(a, b label) int { return strings.Compare(a.name, b.name) })
	return out
}
