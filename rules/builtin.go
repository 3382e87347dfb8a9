package rules

import (
	"embed"
	"path"
	"strings"
)

// builtinFS holds the built-in bottleneck pack (docs/rules.md). Its unit
// tests live in builtin/tests and are not embedded.
//
//go:embed builtin/*.yml
var builtinFS embed.FS

// BuiltinPrefix marks a rule-file name that is read from the embedded
// built-in pack instead of the file system.
const BuiltinPrefix = "builtin:"

// BuiltinFiles names the files of the built-in pack, as Update, Check and
// UnitTest (in rule_files) accept them.
func BuiltinFiles() []string {
	entries, err := builtinFS.ReadDir("builtin")
	if err != nil {
		// The directory is embedded at build time; it cannot be missing.
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, BuiltinPrefix+e.Name())
		}
	}
	return out
}

// isBuiltin reports whether name refers to the embedded pack.
func isBuiltin(name string) bool { return strings.HasPrefix(name, BuiltinPrefix) }

// readBuiltin returns the content of a built-in file.
func readBuiltin(name string) ([]byte, error) {
	return builtinFS.ReadFile(path.Join("builtin", strings.TrimPrefix(name, BuiltinPrefix)))
}
