package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Errors lists every problem found in a configuration file, each as
// "file:line: field path: what is wrong".
type Errors []error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// LoadFile reads, decodes and validates a configuration file. Unknown
// fields and bad values are reported with the file, line and field; paths
// in the file are relative to its directory, as in Prometheus.
func LoadFile(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Load(b, path)
}

// Load decodes and validates configuration content; path names it in
// errors, and its directory is where relative paths in it start.
func Load(b []byte, path string) (*Config, error) {
	cfg := new(Config)
	*cfg = Default()
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, Errors{fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeErrors(path, &root, err)
	}
	var errs Errors
	for _, err := range cfg.Validate() {
		var fe *FieldError
		if errors.As(err, &fe) {
			line := pathLine(&root, fe.Path)
			errs = append(errs, fmt.Errorf("%s:%d: field %s: %w", path, line, fe.Path, fe.Err))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// Files named in the configuration are relative to it, as in Prometheus.
	dir := filepath.Dir(path)
	if p := cfg.Source.Prometheus; p != nil {
		p.HTTPClientConfig.SetDirectory(dir)
	}
	if w := cfg.Workflow.Webhook; w != nil && w.SecretFile != "" && !filepath.IsAbs(w.SecretFile) {
		w.SecretFile = filepath.Join(dir, w.SecretFile)
	}
	cfg.migrateWorkflowAlertmanagers()
	cfg.Alerting.SetDirectory(dir)
	return cfg, nil
}

var (
	yamlLineMsg      = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownField = regexp.MustCompile(`^field (\S+) not found in type .+$`)
	// A bad value as Prometheus's own config types quote it.
	quotedValue = regexp.MustCompile(`"([^"]+)"|but got (\S+)$`)
)

// decodeErrors turns yaml.v3's "line N: …" messages into
// "file:N: field path: …".
func decodeErrors(path string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		// Errors of Prometheus's own sections (alerting) carry no line but
		// often quote the bad value: point at where it is written.
		if q := quotedValue.FindStringSubmatch(msg); q != nil {
			if line, field := valueLine(root, q[1]+q[2]); line > 0 {
				return Errors{fmt.Errorf("%s:%d: field %s: %s", path, line, field, msg)}
			}
		}
		return Errors{fmt.Errorf("%s: %s", path, msg)}
	}
	var errs Errors
	for _, msg := range te.Errors {
		m := yamlLineMsg.FindStringSubmatch(msg)
		if m == nil {
			errs = append(errs, fmt.Errorf("%s: %s", path, msg))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		field := lineField(root, line)
		text := m[2]
		if u := yamlUnknownField.FindStringSubmatch(text); u != nil {
			text = fmt.Sprintf("unknown field %q (check its spelling and indentation against docs/configuration.md)", u[1])
			if strings.HasSuffix(u[1], "_sd_configs") {
				text = fmt.Sprintf("unknown field %q: the agent finds Alertmanagers through static_configs only (docs/alerting.md)", u[1])
			}
		}
		if field == "" {
			errs = append(errs, fmt.Errorf("%s:%d: %s", path, line, text))
			continue
		}
		errs = append(errs, fmt.Errorf("%s:%d: field %s: %s", path, line, field, text))
	}
	return errs
}

// findNode walks the document in order and returns the path of the first
// node match accepts; key is the node's mapping key, nil for a document
// or sequence item.
func findNode(root *yaml.Node, match func(n, key *yaml.Node) bool) (*yaml.Node, string) {
	var found *yaml.Node
	var foundPath string
	var walk func(n, key *yaml.Node, path string)
	walk = func(n, key *yaml.Node, path string) {
		if found != nil {
			return
		}
		if match(n, key) {
			found, foundPath = n, path
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, nil, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], n.Content[i], joinPath(path, n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, nil, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(root, nil, "")
	return found, foundPath
}

// valueLine finds the first scalar written as value and names its line
// and field path.
func valueLine(root *yaml.Node, value string) (int, string) {
	n, path := findNode(root, func(n, _ *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Value == value })
	if n == nil {
		return 0, ""
	}
	return n.Line, path
}

// lineField names the field whose key or scalar value starts on line.
func lineField(root *yaml.Node, line int) string {
	_, path := findNode(root, func(n, key *yaml.Node) bool {
		return (key != nil && key.Line == line) || (n.Kind == yaml.ScalarNode && n.Line == line)
	})
	return path
}

// pathLine finds the line of a field path such as source.targets[1].url,
// or of its nearest ancestor present in the file.
func pathLine(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 1
	if n.Line > 0 {
		line = n.Line
	}
	for _, part := range splitPath(path) {
		switch {
		case part.index >= 0 && n.Kind == yaml.SequenceNode && part.index < len(n.Content):
			n = n.Content[part.index]
			line = n.Line
		case part.index < 0 && n.Kind == yaml.MappingNode:
			next := (*yaml.Node)(nil)
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part.key {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return line
			}
			n = next
		default:
			return line
		}
	}
	return line
}

type pathPart struct {
	key   string
	index int
}

func splitPath(path string) []pathPart {
	var out []pathPart
	for _, seg := range strings.Split(path, ".") {
		key := seg
		var idx []int
		for {
			open := strings.IndexByte(key, '[')
			if open < 0 {
				break
			}
			end := strings.IndexByte(key[open:], ']')
			if end < 0 {
				break
			}
			n, err := strconv.Atoi(key[open+1 : open+end])
			if err == nil {
				idx = append(idx, n)
			}
			key = key[:open] + key[open+end+1:]
		}
		if key != "" {
			out = append(out, pathPart{key: key, index: -1})
		}
		for _, i := range idx {
			out = append(out, pathPart{index: i})
		}
	}
	return out
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}
