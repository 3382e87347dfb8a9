package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// repoFiles lists the repository's text files, relative to its root.
func repoFiles(t *testing.T) map[string][]byte {
	t.Helper()
	root := "../.."
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") && name != ".ci" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.IndexByte(b, 0) >= 0 {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 100 {
		t.Fatalf("found only %d files under %s", len(files), root)
	}
	return files
}

// TestRepositoryStandsAlone fails when a file names a document that is not
// part of the repository: what users need is written in docs/.
func TestRepositoryStandsAlone(t *testing.T) {
	// Built from pieces so that this file does not match itself.
	outside := []string{
		"tuning" + ".md", "engines" + ".md", "DESIGN" + ".md", "STYLE" + ".md",
		"ecosystem" + ".md", "workflow" + ".md", "../" + "shared", "shared" + "/expositions",
	}
	for path, b := range repoFiles(t) {
		for i, line := range strings.Split(string(b), "\n") {
			for _, o := range outside {
				if strings.Contains(line, o) {
					t.Errorf("%s:%d: refers to %q, which is not in the repository; cite the project's own docs/ instead", path, i+1, o)
				}
			}
		}
	}
}

var (
	mdLink      = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading   = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
	codeFenceRe = regexp.MustCompile("(?ms)^```.*?^```")
)

// slug is the anchor a Markdown heading gets: lower case, punctuation
// dropped, spaces as hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// TestDocLinksResolve checks that every relative link of the Markdown
// files points at a file of the repository and, with a #fragment, at one
// of its headings.
func TestDocLinksResolve(t *testing.T) {
	files := repoFiles(t)
	anchors := map[string]map[string]bool{}
	for path, b := range files {
		if !strings.HasSuffix(path, ".md") {
			continue
		}
		set := map[string]bool{}
		for _, m := range mdHeading.FindAllStringSubmatch(codeFenceRe.ReplaceAllString(string(b), ""), -1) {
			set[slug(m[1])] = true
		}
		anchors[path] = set
	}
	checked := 0
	for path, b := range files {
		if !strings.HasSuffix(path, ".md") {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(codeFenceRe.ReplaceAllString(string(b), ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, fragment, _ := strings.Cut(target, "#")
			resolved := path
			if file != "" {
				resolved = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(path), file)))
				if _, err := os.Stat(filepath.Join("../..", resolved)); err != nil {
					t.Errorf("%s: link %q: no file %s in the repository", path, target, resolved)
					continue
				}
			}
			checked++
			if fragment == "" || !strings.HasSuffix(resolved, ".md") {
				continue
			}
			if !anchors[resolved][fragment] {
				t.Errorf("%s: link %q: %s has no heading #%s", path, target, resolved, fragment)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d links checked", checked)
	}
}

// TestFuzzTargetsListed: make fuzz runs every fuzz target of the
// repository, so a new one cannot be forgotten.
func TestFuzzTargetsListed(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	fuzzFunc := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
	found := 0
	for path, b := range repoFiles(t) {
		if !strings.HasSuffix(path, "_test.go") {
			continue
		}
		for _, m := range fuzzFunc.FindAllStringSubmatch(string(b), -1) {
			found++
			if want := "./" + filepath.Dir(path) + ":" + m[1]; !strings.Contains(string(mk), want) {
				t.Errorf("%s: %s is not in the Makefile's FUZZ_TARGETS (want %s)", path, m[1], want)
			}
		}
	}
	if found == 0 {
		t.Fatal("no fuzz targets found")
	}
}
