package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"
)

// PosError is an error at a position in a rule or test file. Line and
// Column are 1-based; zero means unknown.
type PosError struct {
	File   string
	Line   int
	Column int
	Err    error
}

// Error implements error: file:line:col: message, or less where unknown.
func (e *PosError) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	case e.Column == 0:
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	default:
		return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Column, e.Err)
	}
}

// Unwrap returns the underlying error.
func (e *PosError) Unwrap() error { return e.Err }

// errorAt wraps err with the position of n.
func errorAt(file string, n *yaml.Node, err error) *PosError {
	if n == nil {
		return &PosError{File: file, Err: err}
	}
	return &PosError{File: file, Line: n.Line, Column: n.Column, Err: err}
}

var (
	// rulefmt prefixes validation errors with "line:col: " (and a second
	// position when two fields conflict).
	rulefmtPosRE = regexp.MustCompile(`^(\d+):(\d+): (?:\d+:\d+: )?`)
	// rulefmt names the label or annotation whose template fails.
	fieldRE = regexp.MustCompile(`^(label|annotation) "([^"]+)": `)
	// yaml reports syntax and type errors with "line N: ".
	yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// positioned turns one error of rulefmt.Parse into errors that name
// file:line:col. Errors rulefmt gives no position (label and annotation
// checks) are placed at their rule, found in doc.
func positioned(file string, err error, doc *docNodes) []error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]error, 0, len(te.Errors))
		for _, e := range te.Errors {
			out = append(out, lineError(file, e))
		}
		return out
	}
	s := err.Error()
	if m := rulefmtPosRE.FindStringSubmatch(s); m != nil {
		s = s[len(m[0]):]
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		// A field that is absent has position 0:0; the rule is found below.
		if line > 0 {
			return []error{&PosError{File: file, Line: line, Column: col, Err: errors.New(s)}}
		}
	}
	var re *rulefmt.Error
	if errors.As(err, &re) && doc != nil {
		if n := doc.rule(re.Group, re.Rule-1); n != nil {
			at := n.node
			if m := fieldRE.FindStringSubmatch(re.Err.Error()); m != nil {
				fields := n.labels
				if m[1] == "annotation" {
					fields = n.annotations
				}
				if k, _ := mappingEntry(fields, m[2]); k != nil {
					at = k
				}
			}
			return []error{errorAt(file, at, errors.New(s))}
		}
	}
	return []error{lineError(file, s)}
}

// lineError parses yaml's "line N: msg" form.
func lineError(file, s string) error {
	if m := yamlLineRE.FindStringSubmatch(s); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &PosError{File: file, Line: line, Err: errors.New(m[2])}
	}
	return &PosError{File: file, Err: errors.New(s)}
}
