package collector

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// textFamily is one family of gauges of the exporters, as their series'
// labels and values. Gathered, it becomes a client_model family
// (gatherFamilies); for the text format it is written straight from the
// labels (appendText), without building client_model structures for each
// series first: at a thousand instances those were some 25 MB allocated
// at every gathering, and most of what the exporters cost. It writes
// what expfmt writes for the gathered family, byte for byte, and is used
// so only for names that no escaping scheme changes (legacyNames).
type textFamily struct {
	name, help string
	untyped    bool
	// always are the label names every series is written with, empty
	// where a series lacks them, sorted (metricOf).
	always []string
	series []textSeries
}

type textSeries struct {
	lset  labels.Labels
	value float64
}

// appendText appends f to b as expfmt.MetricFamilyToText writes it, its
// series in their order (sortSeries).
func (f *textFamily) appendText(b []byte) []byte {
	b = append(b, "# HELP "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = appendEscaped(b, f.help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.name...)
	if f.untyped {
		b = append(b, " untyped\n"...)
	} else {
		b = append(b, " gauge\n"...)
	}
	for _, s := range f.series {
		b = append(b, f.name...)
		sep := byte('{')
		writtenLabels(s.lset, f.always, func(name, value string) {
			b = append(b, sep)
			b = append(b, name...)
			b = append(b, `="`...)
			b = appendEscaped(b, value, true)
			b = append(b, '"')
			sep = ','
		})
		if sep == ',' {
			b = append(b, '}')
		}
		b = append(b, ' ')
		b = appendTextFloat(b, s.value)
		b = append(b, '\n')
	}
	return b
}

// sortSeries puts f's series in the order client_golang's registry
// serves them: by the number of labels written, then by their values in
// order. The signals come mostly in that order already, and checking
// it reads each series' values about twice; the settings do not, and are
// sorted by their values read out of the labels once, not at every
// comparison.
func (f *textFamily) sortSeries() {
	var x, y []string
	if slices.IsSortedFunc(f.series, func(a, b textSeries) int {
		x, y = writtenValues(x[:0], a.lset, f.always), writtenValues(y[:0], b.lset, f.always)
		return compareValues(x, y)
	}) {
		return
	}
	type keyed struct {
		values []string
		textSeries
	}
	// Room for as many values per series as the first has: grown in
	// steps, the values of the settings were copied several times over.
	all := make([]string, 0, len(f.series)*len(writtenValues(nil, f.series[0].lset, f.always)))
	keys := make([]keyed, len(f.series))
	for i, s := range f.series {
		start := len(all)
		all = writtenValues(all, s.lset, f.always)
		keys[i] = keyed{values: all[start:len(all):len(all)], textSeries: s}
	}
	slices.SortFunc(keys, func(a, b keyed) int { return compareValues(a.values, b.values) })
	for i, k := range keys {
		f.series[i] = k.textSeries
	}
}

// compareValues orders two series by their written values (sortSeries).
func compareValues(a, b []string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return slices.Compare(a, b)
}

// writtenLabels calls fn with each label metricOf writes for lset, in
// order: its labels but the metric name, and those of always (sorted)
// that lset lacks, empty.
func writtenLabels(lset labels.Labels, always []string, fn func(name, value string)) {
	k := 0
	lset.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		for ; k < len(always) && always[k] < l.Name; k++ {
			fn(always[k], "")
		}
		if k < len(always) && always[k] == l.Name {
			k++
		}
		fn(l.Name, l.Value)
	})
	for ; k < len(always); k++ {
		fn(always[k], "")
	}
}

// writtenValues appends the values writtenLabels gives to dst.
func writtenValues(dst []string, lset labels.Labels, always []string) []string {
	writtenLabels(lset, always, func(_, value string) { dst = append(dst, value) })
	return dst
}

// legacyNames reports whether lset's metric name and label names are
// valid in the legacy scheme, which every escaping scheme leaves as they
// are, and which expfmt writes unquoted.
func legacyNames(lset labels.Labels) bool {
	valid := true
	lset.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			valid = valid && model.LegacyValidation.IsValidMetricName(l.Value)
			return
		}
		valid = valid && model.LegacyValidation.IsValidLabelName(l.Name)
	})
	return valid
}

// appendEscaped appends s with backslashes and line feeds escaped, and
// double quotes too when quoted, as the text format escapes label values
// (quoted) and help texts.
func appendEscaped(b []byte, s string, quoted bool) []byte {
	special := "\\\n"
	if quoted {
		special = "\\\n\""
	}
	for {
		i := strings.IndexAny(s, special)
		if i < 0 {
			return append(b, s...)
		}
		b = append(b, s[:i]...)
		switch s[i] {
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, '\\', s[i])
		}
		s = s[i+1:]
	}
}

// appendTextFloat appends f as the text format writes a sample's value.
func appendTextFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
